"""One job's cancel and time limit, and child recycling, against real
children: a handler that blocks its child's loop (``hang``) is stopped by
replacing the child, and the other jobs of its batch finish, nothing lost."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
import trio

from engine.core.engine import Engine
from engine.core.values import JobRequest
from engine.testing import collect_until, jobs_of, open_test_engine
from protocols.lifecycle import JobState


def _is_active(job_id: str):  # type: ignore[no-untyped-def]
    return lambda e: e.event == "job:progress" and e.data.job_id == job_id


async def _jobs(engine: Engine, batch_id: str) -> dict[str, object]:
    return {job.job_id: job for job in (await engine.list_jobs(batch_id)).jobs}


async def test_cancelling_a_hung_job_replaces_its_child_and_loses_nothing(
    tmp_path: Path,
) -> None:
    async with open_test_engine(
        tmp_path, concurrency=2, shutdown_grace_seconds=1.0, job_max_attempts=3
    ) as engine:
        jobs = jobs_of("hang", [{"seconds": 120}]) + jobs_of("sleep", [{"seconds": 0.3}] * 6)
        batch_id, added = await engine.create_batch(None, "sleep", jobs)
        hung = added.job_ids[0]
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, _is_active(hung))
            cancelled = await engine.jobs.cancel(hung)
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
        stored = await _jobs(engine, batch_id)
    assert (cancelled.state, cancelled.error) == (JobState.FAILED, "cancelled")
    assert [e.event for e in seen].count("error") == 0
    assert seen[-1].event == "done"
    others = [job for job_id, job in stored.items() if job_id != hung]
    assert all(job.state is JobState.COMPLETED for job in others)  # type: ignore[attr-defined]
    # The jobs the replaced child held went back without using an attempt.
    assert all(job.attempts == 1 for job in others)  # type: ignore[attr-defined]
    assert stored[hung].attempts == 1  # type: ignore[attr-defined]


async def test_cancelling_an_async_job_stops_it_at_once_in_its_child(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, concurrency=2, shutdown_grace_seconds=30.0) as engine:
        jobs = jobs_of("sleep", [{"seconds": 120}, {"seconds": 0.2}, {"seconds": 0.2}])
        batch_id, added = await engine.create_batch(None, "sleep", jobs)
        slow = added.job_ids[0]
        with trio.fail_after(20), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, _is_active(slow))
            cancelled = await engine.jobs.cancel(slow)  # well within the 30 s grace
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
    assert (cancelled.state, cancelled.error) == (JobState.FAILED, "cancelled")
    assert seen[-1].event == "done" and seen[-1].data.completed == 2


async def test_a_hung_job_times_out_is_retried_then_fails(tmp_path: Path) -> None:
    async with open_test_engine(
        tmp_path,
        concurrency=2,
        shutdown_grace_seconds=0.5,
        job_max_attempts=2,
        job_backoff_seconds=0.1,
    ) as engine:
        jobs = [JobRequest(type="hang", payload={"seconds": 120}, timeout_seconds=0.5)]
        jobs += jobs_of("sleep", [{"seconds": 0.2}] * 5)
        batch_id, added = await engine.create_batch(None, "sleep", jobs)
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
        stored = await _jobs(engine, batch_id)
    hung = stored[added.job_ids[0]]
    assert (hung.state, hung.error, hung.attempts) == (  # type: ignore[attr-defined]
        JobState.FAILED,
        "timed out after 0.5s",
        2,
    )
    assert [e.event for e in seen].count("error") == 0
    assert [e.event for e in seen].count("job:retrying") == 1
    assert seen[-1].data.completed == 5


async def test_the_child_times_out_an_async_handler_itself(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, job_timeout_seconds=0.5) as engine:
        jobs = jobs_of("sleep", [{"seconds": 60}, {"seconds": 0.1}])
        batch_id, added = await engine.create_batch(None, "sleep", jobs)
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, lambda e: e.event in ("done", "error"))
        stored = await _jobs(engine, batch_id)
    slow, quick = (stored[job_id] for job_id in added.job_ids)
    assert (slow.state, slow.error) == (JobState.FAILED, "timed out after 0.5s")  # type: ignore[attr-defined]
    assert quick.state is JobState.COMPLETED  # type: ignore[attr-defined]


async def test_max_jobs_per_child_recycles_children_without_errors(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, concurrency=2, max_jobs_per_child=3) as engine:
        batch_id, _ = await engine.create_batch(None, "pid", jobs_of("pid", [None] * 10))
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
        stored = list((await _jobs(engine, batch_id)).values())
    assert seen[-1].event == "done" and seen[-1].data.completed == 10
    assert [e.event for e in seen].count("processing:started") == 1
    per_child: dict[int, int] = {}
    for job in stored:
        assert job.state is JobState.COMPLETED and job.attempts == 1  # type: ignore[attr-defined]
        per_child[job.result] = per_child.get(job.result, 0) + 1  # type: ignore[attr-defined]
    # A child is fed no more once it started 3 (what it was sent by then may
    # still run there), so 10 jobs take more than one child.
    assert len(per_child) >= 2


async def test_a_def_handler_that_keeps_running_after_its_cancel_loses_its_child(
    tmp_path: Path,
) -> None:
    async with open_test_engine(
        tmp_path, concurrency=3, shutdown_grace_seconds=1.0, job_max_attempts=2
    ) as engine:
        # Tens of millions of hashing rounds: a thread busy far beyond the grace.
        jobs = jobs_of("cpu", [{"iterations": 200_000_000}])
        jobs += jobs_of("sleep", [{"seconds": 0.3}] * 6)
        batch_id, added = await engine.create_batch(None, "sleep", jobs)
        busy = added.job_ids[0]
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, _is_active(busy))
            pid_before = engine.jobs.child_of(batch_id)
            cancelled = await engine.jobs.cancel(busy)
            # Its failure is written once the killed child was reaped.
            assert pid_before is not None and not psutil.pid_exists(pid_before.pid)
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
        stored = await _jobs(engine, batch_id)
    assert (cancelled.state, cancelled.error, cancelled.attempts) == (
        JobState.FAILED,
        "cancelled",
        1,
    )
    assert [e.event for e in seen].count("error") == 0
    others = [job for job_id, job in stored.items() if job_id != busy]
    assert all(job.state is JobState.COMPLETED and job.attempts == 1 for job in others)  # type: ignore[attr-defined]


async def test_max_child_memory_recycles_a_child_that_grew_past_it(tmp_path: Path) -> None:
    # Every Python child is far above 1 MB: each is recycled at its first sample.
    async with open_test_engine(tmp_path, concurrency=2, max_child_memory_mb=1) as engine:
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 0.4}] * 8)
        )
        pids: set[int] = set()
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            async with trio.open_nursery() as nursery:

                async def note_children() -> None:
                    while True:
                        stats = engine.jobs.child_of(batch_id)
                        if stats is not None:
                            pids.add(stats.pid)
                        await trio.sleep(0.05)

                nursery.start_soon(note_children)
                seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
                nursery.cancel_scope.cancel()
        stored = list((await _jobs(engine, batch_id)).values())
    assert seen[-1].event == "done" and seen[-1].data.completed == 8
    assert len(pids) >= 2
    assert all(job.attempts == 1 for job in stored)  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_a_job_active_on_another_engine_is_cancelled_there(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    settings: dict[str, object] = {"concurrency": 2, "shutdown_grace_seconds": 1.0}
    if backend == "redis":
        settings["store_url"] = request.getfixturevalue("redis_url")
    async with (
        open_test_engine(tmp_path, **settings) as runner,
        open_test_engine(tmp_path, **settings) as other,
    ):
        jobs = jobs_of("hang", [{"seconds": 120}]) + jobs_of("sleep", [{"seconds": 0.2}] * 4)
        batch_id, added = await runner.create_batch(None, "sleep", jobs)
        hung = added.job_ids[0]
        with trio.fail_after(60), runner.subscribe([batch_id]) as sub:
            await runner.start(batch_id)
            await collect_until(sub, _is_active(hung))
            cancelled = await other.jobs.cancel(hung)  # asked through the store
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
        stored = await _jobs(runner, batch_id)
    assert (cancelled.state, cancelled.error) == (JobState.FAILED, "cancelled")
    assert seen[-1].event == "done" and seen[-1].data.completed == 4
    assert all(job.attempts == 1 for job in stored.values())  # type: ignore[attr-defined]
