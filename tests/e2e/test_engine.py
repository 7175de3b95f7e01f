"""The engine end to end: real child processes, real store, real time with
generous bounds."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import trio

from engine.config.settings import RateLimit
from engine.core.engine import StartResult
from engine.errors import BatchNotRunning, ShuttingDown
from engine.store.sqlite import open_sqlite_store
from engine.testing import collect_until, jobs_of, open_test_engine
from protocols.events import Event
from protocols.lifecycle import JobState
from tests.e2e.helpers import child_processes


def _terminal(events: list[Event]) -> list[Event]:
    return [e for e in events if e.event == "job:progress" and e.data.finished]


async def test_event_sequence_of_a_batch(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, concurrency=4) as engine:
        batch_id, added = await engine.create_batch(
            None, "echo", jobs_of("echo", [{"n": i} for i in range(30)])
        )
        assert added.enqueued == 30
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            assert await engine.start(batch_id) is StartResult.STARTED
            seen = await collect_until(sub)
    names = Counter(e.event for e in seen)
    assert names["processing:started"] == 1
    assert seen[0].event == "processing:started"
    assert names["done"] == 1 and seen[-1].event == "done"
    terminal = _terminal(seen)
    assert len(terminal) == 30
    assert len({e.data.job_id for e in terminal}) == 30
    assert seen[-1].data.completed == 30 and seen[-1].data.failed == 0
    seqs = [e.seq for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    progress = [e for e in seen if e.event == "processing:progress"]
    assert progress and progress[-1].data.completed == 30
    assert all(e.data.total == 30 for e in progress)


async def test_concurrency_cap_is_reached_and_never_exceeded(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, concurrency=3, batch_size=10) as engine:
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 0.05}] * 24)
        )
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub)
    active: set[str] = set()
    peak = 0
    for event in seen:
        if event.event != "job:progress":
            continue
        if event.data.status is JobState.ACTIVE:
            active.add(event.data.job_id)
        else:
            active.discard(event.data.job_id)
        peak = max(peak, len(active))
    assert peak == 3


async def test_rate_limit_holds_end_to_end(tmp_path: Path) -> None:
    rate = RateLimit(count=5, per_seconds=1.0)
    async with open_test_engine(tmp_path, concurrency=8, rate_limit=rate) as engine:
        batch_id, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None] * 15))
        starts: list[float] = []
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            async for event in sub:
                if event.event == "job:progress" and event.data.status is JobState.ACTIVE:
                    assert event.data.started_at is not None  # the child's clock
                    starts.append(event.data.started_at)
                if event.event == "done":
                    break
    assert len(starts) == 15
    assert abs(starts[0] - time.time()) < 30
    # 15 starts at 5 per second need at least two full windows after the first.
    assert starts[-1] - starts[0] >= 1.9
    # Strict on handler starts: no window of exactly 1 s holds more than 5.
    ordered = sorted(starts)
    for i, t in enumerate(ordered):
        assert sum(1 for u in ordered[i:] if u - t < 1.0) <= 5


async def test_a_run_held_by_another_engine_is_not_started_here(tmp_path: Path) -> None:
    async with (
        open_test_engine(tmp_path) as engine,
        open_sqlite_store(str(tmp_path / "batchyard.db")) as shared,
    ):
        batch_id, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None]))
        assert await shared.acquire_run(batch_id, "engine-elsewhere", 60) == "engine-elsewhere"
        with trio.fail_after(15):
            assert await engine.start(batch_id) is StartResult.ALREADY_RUNNING
            assert not engine.is_running(batch_id)
            assert engine.status().active_batches == 0  # its capacity was given back
            await shared.release_run(batch_id, "engine-elsewhere", finished=False)
            with engine.subscribe([batch_id]) as sub:
                assert await engine.start(batch_id) is StartResult.STARTED
                assert (await shared.get_batch(batch_id)).run_owner == engine.owner
                await collect_until(sub)
            await engine.wait_stopped(batch_id)
        assert await shared.runs() == []  # finished: forgotten


async def test_start_answers_started_already_running_capacity_reached(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, max_active_batches=1) as engine:
        first, _ = await engine.create_batch(None, "sleep", jobs_of("sleep", [{"seconds": 30}]))
        second, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None]))
        assert await engine.start(first) is StartResult.STARTED
        assert await engine.start(first) is StartResult.ALREADY_RUNNING
        assert await engine.start(second) is StartResult.CAPACITY_REACHED
        assert engine.status().running_batches == (first,)
        with engine.subscribe([first]) as sub, trio.fail_after(15):
            await engine.cancel(first)
            done = (await collect_until(sub))[-1]
        assert done.data.reason == "cancelled"
        with trio.fail_after(15):
            await engine.wait_stopped(first)
        assert not engine.is_running(first)
        assert await engine.start(second) is StartResult.STARTED
        with pytest.raises(BatchNotRunning):
            await engine.cancel(first)


async def test_crashing_child_loses_no_job_and_honours_batch_retries(tmp_path: Path) -> None:
    async with open_test_engine(
        tmp_path, batch_retries=2, job_max_attempts=5, concurrency=1
    ) as engine:
        jobs = jobs_of("noop", [None] * 5) + jobs_of("crash", [{"exitCode": 7}])
        batch_id, _ = await engine.create_batch(None, "noop", jobs)
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub, lambda e: e.event == "error" and not e.data.restarting)
        counts = await engine.counts(batch_id)
        page = await engine.list_jobs(batch_id)
    errors = [e for e in seen if e.event == "error"]
    assert len(errors) == 3
    assert [e.data.restarting for e in errors] == [True, True, False]
    assert "code 7" in errors[0].data.error
    assert Counter(e.event for e in seen)["processing:started"] == 3
    assert counts.total == 6 and counts.active == 0
    assert counts.completed == 5
    crasher = next(j for j in page.jobs if j.type == "crash")
    assert crasher.attempts == 3
    assert crasher.state is JobState.PENDING


async def test_crash_uses_up_attempts_then_fails_the_job(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, batch_retries=3, job_max_attempts=2) as engine:
        batch_id, _ = await engine.create_batch(None, "crash", jobs_of("crash", [{}]))
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub, lambda e: e.event in ("done",))
        counts = await engine.counts(batch_id)
    assert counts.failed == 1
    failed = [e for e in _terminal(seen) if e.data.status is JobState.FAILED]
    assert len(failed) == 1 and "crashed" in failed[0].data.error
    assert sum(1 for e in seen if e.event == "error") == 2, [
        e.data for e in seen if e.event == "error"
    ]


async def test_job_failures_retry_with_backoff_then_succeed(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, job_max_attempts=3, job_backoff_seconds=0.05) as engine:
        batch_id, _ = await engine.create_batch(
            None, "flaky", jobs_of("flaky", [{"failTimes": 2}]) + jobs_of("fail", [{}])
        )
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub)
        page = await engine.list_jobs(batch_id)
    by_type = {j.type: j for j in page.jobs}
    assert by_type["flaky"].state is JobState.COMPLETED and by_type["flaky"].attempts == 3
    assert by_type["fail"].state is JobState.FAILED and by_type["fail"].attempts == 3
    assert "failed on purpose" in (by_type["fail"].error or "")
    assert sum(1 for e in seen if e.event == "job:retrying") == 4
    assert len(_terminal(seen)) == 2


async def test_cancel_kills_a_hung_child_after_the_grace_period(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, shutdown_grace_seconds=1.0) as engine:
        batch_id, _ = await engine.create_batch(None, "hang", jobs_of("hang", [{"seconds": 60}]))
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            # A hung child cannot even report the job active: wait for the
            # run to begin, then give the child time to take the job.
            await collect_until(sub, lambda e: e.event == "processing:started")
            await trio.sleep(0.5)
            began = trio.current_time()
            await engine.cancel(batch_id)
            done = (await collect_until(sub))[-1]
            took = trio.current_time() - began
        counts = await engine.counts(batch_id)
        page = await engine.list_jobs(batch_id)
    assert 0.9 <= took < 5
    assert done.data.reason == "cancelled"
    assert counts.pending == 1
    assert page.jobs[0].attempts == 0


async def test_shutdown_kills_long_jobs_at_the_grace_deadline(tmp_path: Path) -> None:
    async with open_test_engine(
        tmp_path, shutdown_grace_seconds=2.0, concurrency=4, warm_children=0
    ) as engine:
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 30}] * 4)
        )
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(
                sub,
                lambda e: e.event == "job:progress" and len(engine.status().running_batches) > 0,
            )
            await trio.sleep(0.2)
            began = trio.current_time()
            await engine.shutdown()
            took = trio.current_time() - began
            with pytest.raises(ShuttingDown):
                await engine.start(batch_id)
            done = (await collect_until(sub))[-1]
        counts = await engine.counts(batch_id)
    assert 1.9 <= took < 3.5
    assert done.data.reason == "shutdown"
    assert counts.pending == 4 and counts.active == 0
    assert child_processes() == []


async def test_shutdown_returns_as_soon_as_short_jobs_finish(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, shutdown_grace_seconds=10.0, concurrency=4) as engine:
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 0.5}] * 8)
        )
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, lambda e: e.event == "job:progress")
            began = trio.current_time()
            await engine.shutdown()
            took = trio.current_time() - began
        counts = await engine.counts(batch_id)
    assert took < 2.0
    # The jobs in flight when the shutdown came finished (how many had
    # started by then depends on the machine's load); the rest wait.
    assert counts.completed >= 4 and counts.completed + counts.pending == 8
    assert counts.active == 0 and counts.failed == 0


async def test_second_shutdown_skips_the_wait(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, shutdown_grace_seconds=20.0) as engine:
        batch_id, _ = await engine.create_batch(None, "sleep", jobs_of("sleep", [{"seconds": 60}]))
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, lambda e: e.event == "job:progress")
            began = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(engine.shutdown)
                await trio.sleep(0.3)
                await engine.shutdown()
            took = trio.current_time() - began
        assert (await engine.counts(batch_id)).pending == 1
    assert took < 3


async def test_sync_handlers_run_in_threads_and_report_progress(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, concurrency=2) as engine:
        batch_id, _ = await engine.create_batch(
            None,
            "cpu",
            jobs_of("cpu", [{"iterations": 1000}] * 2) + jobs_of("steps", [{"steps": 4}]),
        )
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub)
        page = await engine.list_jobs(batch_id)
    cpu = [j for j in page.jobs if j.type == "cpu"]
    assert all(j.state is JobState.COMPLETED and len(j.result) == 64 for j in cpu)
    progress = [
        e.data.progress
        for e in seen
        if e.event == "job:progress" and e.data.status is JobState.ACTIVE and e.data.progress > 0
    ]
    assert progress == [25.0, 50.0, 75.0, 100.0]


async def test_interrupted_run_resumes_when_the_engine_starts_again(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path, shutdown_grace_seconds=0.0, concurrency=2) as engine:
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 0.2}] * 6)
        )
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, lambda e: e.event == "job:progress")
            await engine.shutdown()
    async with open_test_engine(tmp_path, concurrency=2) as engine:
        with trio.fail_after(30), engine.subscribe([batch_id], resume_from=0) as sub:
            seen = await collect_until(sub)
        counts = await engine.counts(batch_id)
    # Every event came from the new engine's own run (its bus starts empty).
    assert seen[0].event == "processing:started"
    assert [e.event for e in seen].count("processing:started") == 1
    assert seen[-1].event == "done" and seen[-1].data.reason is None
    assert counts.completed == 6


async def test_pause_holds_dispatch_until_resume(tmp_path: Path) -> None:
    async with open_test_engine(tmp_path) as engine:
        batch_id, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None] * 3))
        engine.pause()
        assert engine.status().paused
        with trio.fail_after(30), engine.subscribe([batch_id]) as sub:
            assert await engine.start(batch_id) is StartResult.STARTED
            with trio.move_on_after(0.5):
                await collect_until(sub, lambda e: e.event == "job:progress")
                pytest.fail("a job was handed out while paused")
            engine.resume()
            seen = await collect_until(sub)
    assert len(_terminal(seen)) == 3
