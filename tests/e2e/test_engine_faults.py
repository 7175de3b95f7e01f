"""The engine under faults: malformed IPC, a store that stops answering for a
while, and the warm child a batch start takes."""

from __future__ import annotations

from pathlib import Path

import trio

from engine.core.startup import open_engine
from engine.store import open_store
from engine.testing import (
    FailingStore,
    collect_until,
    jobs_of,
    open_test_engine,
    settings_for_tests,
)
from protocols.events import RunDone
from protocols.lifecycle import JobState
from tests.e2e.helpers import child_processes


async def test_malformed_ipc_is_a_crash_of_that_batch_only(tmp_path: Path) -> None:
    # One job at a time: the crash then cuts short only the job that caused it.
    async with open_test_engine(
        tmp_path, batch_retries=1, job_max_attempts=1, concurrency=1
    ) as engine:
        batch_id, _ = await engine.create_batch(
            None, "noop", jobs_of("garble", [{}]) + jobs_of("noop", [None] * 3)
        )
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub)
        page = await engine.list_jobs(batch_id)
    errors = [e for e in seen if e.event == "error"]
    assert len(errors) == 1 and errors[0].data.restarting is True
    assert "malformed IPC" in errors[0].data.error
    states = {j.type: j.state for j in page.jobs}
    assert states == {"garble": JobState.FAILED, "noop": JobState.COMPLETED}
    assert seen[-1].data == RunDone(batch_id=batch_id, completed=3, failed=1)


async def test_a_run_waits_out_a_store_outage(tmp_path: Path) -> None:
    settings = settings_for_tests(tmp_path, concurrency=2)
    async with open_store(settings.store_url) as real_store:
        store = FailingStore(real_store)
        async with open_engine(settings, store=store) as engine:  # type: ignore[arg-type]
            batch_id, _ = await engine.create_batch(
                None, "sleep", jobs_of("sleep", [{"seconds": 0.2}] * 6)
            )
            with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
                await engine.start(batch_id)
                await collect_until(sub, lambda e: e.event == "job:progress")
                store.fail("apply", "claim_jobs")
                await trio.sleep(1.0)
                assert store.failed_calls > 0
                assert engine.is_running(batch_id)
                store.recover()
                seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
                await engine.wait_stopped(batch_id)
            page = await engine.list_jobs(batch_id)
        assert child_processes() == []
    assert seen[-1].data == RunDone(batch_id=batch_id, completed=6, failed=0)
    assert {(j.state, j.attempts) for j in page.jobs} == {(JobState.COMPLETED, 1)}


async def test_a_batch_start_takes_the_warm_child(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, warm_children=1) as engine:
        with trio.fail_after(30):
            await engine.wait_warm()
            warm = {c.pid for c in child_processes()}
            assert len(warm) == 1
            batch_id, _ = await engine.create_batch(None, "pid", jobs_of("pid", [None]))
            with engine.subscribe([batch_id]) as sub:
                await engine.start(batch_id)
                await collect_until(sub)
        page = await engine.list_jobs(batch_id)
    assert page.jobs[0].result in warm
