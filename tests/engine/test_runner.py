"""One batch run, on trio's MockClock with in-process children: the event
sequence, the concurrency cap, the batch rate limit, crashes and restarts,
retries with backoff. Every time asserted here is exact."""

from __future__ import annotations

import bisect
from collections import Counter

import pytest
import trio
from trio.testing import MockClock

from engine.config.settings import RateLimit
from engine.core.engine import Engine, StartResult
from engine.testing import collect_until, jobs_of
from protocols.events import Event, RunDone
from protocols.lifecycle import JobState
from tests.conftest import FakeEngineOpener


def _terminal(events: list[Event]) -> list[Event]:
    return [
        e
        for e in events
        if e.event == "job:progress" and e.data.status.value in ("completed", "failed")
    ]


def _busiest_window(starts: list[float], per_seconds: float) -> int:
    """The most starts any half-open window ``[t, t + per_seconds)`` holds."""
    ordered = sorted(starts)
    return max(
        bisect.bisect_left(ordered, t + per_seconds) - bisect.bisect_left(ordered, t)
        for t in ordered
    )


async def _run(engine: Engine, batch_id: str) -> list[Event]:
    """Start the batch; its events up to ``done``."""
    with engine.subscribe([batch_id]) as sub:
        assert await engine.start(batch_id) is StartResult.STARTED
        return await collect_until(sub)


async def test_event_sequence_of_a_batch(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(concurrency=4) as engine:
        batch_id, added = await engine.create_batch(
            None, "echo", jobs_of("echo", [{"n": i} for i in range(30)])
        )
        assert added.enqueued == 30
        seen = await _run(engine, batch_id)
    names = Counter(e.event for e in seen)
    assert seen[0].event == "processing:started" and names["processing:started"] == 1
    assert seen[-1].event == "done" and names["done"] == 1
    terminal = _terminal(seen)
    assert len({e.data.job_id for e in terminal}) == len(terminal) == 30
    assert seen[-1].data == RunDone(batch_id=batch_id, completed=30, failed=0)
    seqs = [e.seq for e in seen]
    assert seqs == sorted(set(seqs))
    progress = [e for e in seen if e.event == "processing:progress"]
    assert progress and progress[-1].data.completed == 30
    assert all(e.data.total == 30 for e in progress)


async def test_concurrency_cap_is_reached_and_never_exceeded(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(concurrency=3, batch_size=10) as engine:
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 1.0}] * 24)
        )
        began = trio.current_time()
        seen = await _run(engine, batch_id)
        took = trio.current_time() - began
    active: set[str] = set()
    peak = 0
    for event in seen:
        if event.event != "job:progress":
            continue
        if event.data.status.value == "active":
            active.add(event.data.job_id)
        else:
            active.discard(event.data.job_id)
        peak = max(peak, len(active))
    assert peak == 3
    # 24 one-second jobs, three at a time, back to back: exactly 8 rounds.
    assert took == pytest.approx(8.0)


async def test_the_batch_rate_limit_holds_strictly(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    rate = RateLimit(count=5, per_seconds=1.0)
    async with fake_engine(concurrency=8, rate_limit=rate) as engine:
        batch_id, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None] * 15))
        starts: list[float] = []
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            async for event in sub:
                if event.event == "job:progress" and event.data.status.value == "active":
                    starts.append(trio.current_time())
                if event.event == "done":
                    break
    assert len(starts) == 15
    assert _busiest_window(starts, 1.0) == 5
    # Three full windows: five starts at once, then five each second.
    assert starts[-1] - starts[0] == pytest.approx(2.0)


async def test_a_crashing_child_loses_no_job_and_honours_batch_retries(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(batch_retries=2, job_max_attempts=5, concurrency=1) as engine:
        jobs = jobs_of("noop", [None] * 5) + jobs_of("crash", [{"exitCode": 7}])
        batch_id, _ = await engine.create_batch(None, "noop", jobs)
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub, lambda e: e.event == "error" and not e.data.restarting)
        await engine.wait_stopped(batch_id)
        counts = await engine.counts(batch_id)
        page = await engine.list_jobs(batch_id)
    errors = [e for e in seen if e.event == "error"]
    assert [e.data.restarting for e in errors] == [True, True, False]
    assert all(e.data.error == "the child exited with code 7" for e in errors)
    assert Counter(e.event for e in seen)["processing:started"] == 3
    assert (counts.total, counts.active, counts.completed) == (6, 0, 5)
    crasher = next(j for j in page.jobs if j.type == "crash")
    assert (crasher.attempts, crasher.state) == (3, JobState.PENDING)


async def test_a_crash_uses_up_attempts_then_fails_the_job(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(batch_retries=3, job_max_attempts=2) as engine:
        batch_id, _ = await engine.create_batch(None, "crash", jobs_of("crash", [{}]))
        seen = await _run(engine, batch_id)
        counts = await engine.counts(batch_id)
    assert counts.failed == 1
    failed = [e for e in _terminal(seen) if e.data.status.value == "failed"]
    assert len(failed) == 1 and "crashed" in failed[0].data.error
    assert [e.data.restarting for e in seen if e.event == "error"] == [True, True]


async def test_malformed_ipc_is_a_crash_of_that_batch_only(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(batch_retries=1, job_max_attempts=1, concurrency=1) as engine:
        batch_id, _ = await engine.create_batch(
            None, "noop", jobs_of("garble", [{}]) + jobs_of("noop", [None] * 3)
        )
        seen = await _run(engine, batch_id)
        page = await engine.list_jobs(batch_id)
    errors = [e for e in seen if e.event == "error"]
    assert len(errors) == 1 and errors[0].data.restarting is True
    assert "malformed IPC" in errors[0].data.error
    assert {j.type: j.state for j in page.jobs} == {
        "garble": JobState.FAILED,
        "noop": JobState.COMPLETED,
    }
    assert seen[-1].data == RunDone(batch_id=batch_id, completed=3, failed=1)


async def test_failures_retry_after_an_exponential_backoff(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(job_max_attempts=3, job_backoff_seconds=1.0) as engine:
        batch_id, _ = await engine.create_batch(
            None, "flaky", jobs_of("flaky", [{"failTimes": 2}]) + jobs_of("fail", [{}])
        )
        began = trio.current_time()
        starts: dict[str, list[float]] = {}
        seen: list[Event] = []
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            async for event in sub:
                seen.append(event)
                if event.event == "job:progress" and event.data.status.value == "active":
                    starts.setdefault(event.data.job_id, []).append(trio.current_time() - began)
                if event.event == "done":
                    break
        page = await engine.list_jobs(batch_id)
    by_type = {j.type: j for j in page.jobs}
    assert (by_type["flaky"].state, by_type["flaky"].attempts) == (JobState.COMPLETED, 3)
    assert (by_type["fail"].state, by_type["fail"].attempts) == (JobState.FAILED, 3)
    # Attempts 2 and 3 wait one backoff, then two.
    for job in page.jobs:
        assert starts[job.job_id] == pytest.approx([0.0, 1.0, 3.0])
    assert sum(1 for e in seen if e.event == "job:retrying") == 4
    assert len(_terminal(seen)) == 2
