"""Room in a batch's rate window as the engine works it out for a job of a
type with a rate of its own, on ``MockClock`` (``engine.core.batch_room``):
the run's reported starts, and the jobs sent to the child whose start is
not reported yet, counted as starting now. Wall clock here is
``trio_wall_clock``, as a fake engine's is."""

from __future__ import annotations

import random
from functools import partial

import pytest
import trio
import trio.testing

from engine.child.rate_window import RateWindow
from engine.config.settings import RateLimit
from engine.core.batch_room import batch_window, wait_for_batch_room
from engine.core.held import HeldJob, HeldJobs
from engine.core.limits import RecentStarts
from engine.store.records import JobRecord, Release
from engine.testing.harness import trio_wall_clock
from protocols.lifecycle import JobState
from tests.engine.windows import busiest_cost


def _record(job_id: str, cost: float = 1.0) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        batch_id="b",
        type="embed",
        state=JobState.ACTIVE,
        payload=None,
        attempts=1,
        max_attempts=1,
        key=None,
        priority=0,
        result=None,
        error=None,
        traceback=None,
        created_at=0.0,
        available_at=0.0,
        cost=cost,
    )


def _started(held: HeldJobs, job: HeldJob) -> None:
    """The child's ``JobStarted`` for ``job``, recorded now."""
    job.active_since = trio.current_time()
    held.restamp(job, trio_wall_clock())


async def _nothing() -> None:
    pass


def _run(count: int, per_seconds: float) -> tuple[RecentStarts, HeldJobs]:
    starts = RecentStarts(RateLimit(count=count, per_seconds=per_seconds))
    return starts, HeldJobs(trio.CapacityLimiter(10), starts=starts)


async def test_the_window_holds_reported_starts_and_sent_jobs_not_yet_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts, held = _run(count=5, per_seconds=10.0)
    reported = held.add(_record("reported", cost=2.0), object())
    held.note_sent([reported.record])
    _started(held, reported)
    sent = held.add(_record("sent"), object())
    ended = held.add(_record("ended"), object())
    held.note_sent([sent.record, ended.record])
    ended.outcome = Release(job_id="ended", refund_attempt=True)  # interrupted unstarted
    held.add(_record("not-sent", cost=3.0), object())
    await trio.sleep(4.0)
    window = batch_window(starts, held, trio_wall_clock())
    # 2 reported, 1 sent: 2 of cost fit now; 3 once the reported start
    # leaves (at 10), 5 once the sent one has too (it counts from now).
    assert window.available() == 2.0
    assert window.next_start_at(3.0) == pytest.approx(10.0)
    assert window.next_start_at(5.0) == pytest.approx(14.0)


async def test_a_job_waits_for_the_reported_starts_to_leave_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts, held = _run(count=2, per_seconds=1.0)
    for name, delay in (("a", 0.0), ("b", 0.3)):
        await trio.sleep(delay)
        job = held.add(_record(name), object())
        held.note_sent([job.record])
        _started(held, job)
    flushed_at = []

    async def flush() -> None:
        flushed_at.append(trio.current_time())

    await wait_for_batch_room(_record("c"), held, starts, trio_wall_clock, flush)
    assert trio.current_time() == pytest.approx(1.0)
    assert flushed_at == [0.3]  # the jobs ahead went out before it waited


async def test_a_sent_job_holds_its_room_until_its_start_is_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts, held = _run(count=1, per_seconds=1.0)
    sent = held.add(_record("sent"), object())
    held.note_sent([sent.record])

    async def report_late() -> None:
        await trio.sleep(2.5)  # it waited that long in the child
        _started(held, sent)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(report_late)
        await wait_for_batch_room(_record("next"), held, starts, trio_wall_clock, _nothing)
    # Not when a start made as it was sent would have left (1.0), but one
    # window after the start it made.
    assert trio.current_time() == pytest.approx(3.5)


async def test_room_found_here_is_room_in_the_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The child keeps the window where handlers start; each job reaches it
    # a while after it is sent and reports its start a while later. Jobs
    # of other types (not waited for here) are sent among them: they wait
    # in the child for its window.
    rate = RateLimit(count=3, per_seconds=1.0)
    starts, held = _run(count=rate.count, per_seconds=rate.per_seconds)
    child = RateWindow(rate.count, rate.per_seconds)
    shuffled = random.Random(7)
    started: list[tuple[float, float]] = []
    waited_in_child: list[float] = []

    async def in_child(job: HeldJob, *, checked: bool) -> None:
        await trio.sleep(shuffled.uniform(0.0, 0.2))
        arrived = trio.current_time()
        await child.take(job.record.cost)
        started.append((trio.current_time(), job.record.cost))
        if checked:
            waited_in_child.append(trio.current_time() - arrived)
        await trio.sleep(shuffled.uniform(0.0, 0.2))
        _started(held, job)

    async with trio.open_nursery() as nursery:
        for i in range(30):
            checked = i % 3 != 0
            record = _record(f"job-{i}", cost=shuffled.choice((1.0, 2.0)))
            if checked:
                await wait_for_batch_room(record, held, starts, trio_wall_clock, _nothing)
            job = held.add(record, object())
            held.note_sent([record])
            nursery.start_soon(partial(in_child, job, checked=checked))
            await trio.sleep(shuffled.uniform(0.0, 0.1))
    assert len(started) == 30
    assert busiest_cost(started, 1.0) <= 3
    assert waited_in_child and max(waited_in_child) == 0.0
