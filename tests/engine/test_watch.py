"""``ChildWatch`` on the mock clock: a cancel's grace, a time limit's
deadline, and the job count and memory that recycle a child."""

from __future__ import annotations

import attrs
import trio
import trio.testing

from engine.core.held import HeldJob, HeldJobs
from engine.core.watch import SAMPLE_SECONDS, ChildWatch, Usage
from engine.store.records import Fail, JobRecord
from protocols import ipc
from protocols.lifecycle import JobState

GRACE = 2.0


def _record(job_id: str, *, attempts: int = 1, max_attempts: int = 1) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        batch_id="b",
        type="t",
        state=JobState.ACTIVE,
        payload=None,
        attempts=attempts,
        max_attempts=max_attempts,
        key=None,
        priority=0,
        result=None,
        error=None,
        traceback=None,
        created_at=0.0,
        available_at=0.0,
        timeout_seconds=None,
    )


@attrs.define
class _Child:
    """What the watch did to the child."""

    recycled: list[float] = attrs.Factory(list)
    killed: list[float] = attrs.Factory(list)
    asked: list[ipc.ParentMessage] = attrs.Factory(list)
    rss: int = 1000

    async def recycle(self) -> None:
        self.recycled.append(trio.current_time())

    def kill(self) -> None:
        self.killed.append(trio.current_time())

    async def ask(self, message: ipc.ParentMessage) -> None:
        self.asked.append(message)

    def sample(self, pid: int) -> Usage:
        return Usage(rss_bytes=self.rss, cpu_seconds=1.5)


def _watch(
    child: _Child,
    held: HeldJobs,
    *,
    max_jobs: int = 0,
    max_rss: int = 0,
    timeouts: dict[str, float] | None = None,
) -> ChildWatch:
    limits = timeouts or {}
    return ChildWatch(
        pid=42,
        held=held,
        grace_seconds=GRACE,
        max_jobs=max_jobs,
        max_rss_bytes=max_rss,
        timeout_of=lambda job: limits.get(job.record.job_id),
        retry_at=lambda job: 99.0 if job.record.attempts < job.record.max_attempts else None,
        recycle=child.recycle,
        replace=child.kill,
        ask=child.ask,
        sample=child.sample,
    )


def _hold(held: HeldJobs, *records: JobRecord) -> list[HeldJob]:
    jobs = []
    for record in records:
        credit = object()
        held.credits.acquire_on_behalf_of_nowait(credit)
        jobs.append(held.add(record, credit))
    return jobs


def _start(watch: ChildWatch, *jobs: HeldJob) -> None:
    """The child reported these jobs started (the recorder marks them after)."""
    watch.observe([ipc.JobStarted(job_id=j.record.job_id, started_at=0.0) for j in jobs])
    for job in jobs:
        job.active_since = trio.current_time()


async def test_a_cancelled_job_that_ends_within_the_grace_keeps_its_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child, held = _Child(), HeldJobs(trio.CapacityLimiter(4))
    (job,) = _hold(held, _record("a"))
    watch = _watch(child, held)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        _start(watch, job)
        assert watch.cancel("a") and not watch.cancel("unknown")
        await trio.sleep(GRACE - 0.5)
        assert child.asked == [ipc.CancelJob(job_id="a")]
        assert job.ended_by == Fail(job_id="a", error="cancelled")
        held.pop("a")  # the child reported it interrupted; it was recorded
        await trio.sleep(GRACE * 3)
        nursery.cancel_scope.cancel()
    assert child.killed == [] and not watch.replaced


async def test_a_cancelled_job_still_running_after_the_grace_replaces_its_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child, held = _Child(), HeldJobs(trio.CapacityLimiter(4))
    hung, other = _hold(held, _record("hung"), _record("other"))
    watch = _watch(child, held)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        _start(watch, hung, other)
        t0 = trio.current_time()
        watch.cancel("hung")
        await trio.sleep(GRACE * 2)
    assert child.killed == [t0 + GRACE]
    assert watch.replaced
    assert hung.outcome == Fail(job_id="hung", error="cancelled")
    assert other.outcome is None  # released (refunded) with the replaced child


async def test_a_job_cancelled_before_it_starts_is_asked_again_when_it_does(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child, held = _Child(), HeldJobs(trio.CapacityLimiter(4))
    (job,) = _hold(held, _record("late"))
    watch = _watch(child, held)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        watch.cancel("late")
        await trio.sleep(GRACE * 5)  # not started: no deadline yet
        assert child.killed == []
        t0 = trio.current_time()
        _start(watch, job)
        await trio.sleep(GRACE * 2)
    assert child.asked == [ipc.CancelJob(job_id="late")] * 2
    assert child.killed == [t0 + GRACE]


async def test_a_time_limit_replaces_the_child_a_grace_after_it_passed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child, held = _Child(), HeldJobs(trio.CapacityLimiter(4))
    last, retried = _hold(held, _record("last"), _record("retried", attempts=1, max_attempts=3))
    watch = _watch(child, held, timeouts={"last": 5.0, "retried": 5.0})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        t0 = trio.current_time()
        _start(watch, last, retried)
        await trio.sleep(5.0 + GRACE - 0.1)
        assert child.killed == []  # the child had its chance to time them out
        await trio.sleep(1.0)
    assert child.killed == [t0 + 5.0 + GRACE]
    assert last.outcome == Fail(job_id="last", error="timed out after 5s")
    assert retried.outcome == Fail(job_id="retried", error="timed out after 5s", retry_at=99.0)


async def test_a_job_that_ends_within_its_time_limit_changes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child, held = _Child(), HeldJobs(trio.CapacityLimiter(4))
    (job,) = _hold(held, _record("a"))
    watch = _watch(child, held, timeouts={"a": 5.0})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        _start(watch, job)
        await trio.sleep(4.0)
        held.pop("a")
        await trio.sleep(30.0)
        nursery.cancel_scope.cancel()
    assert child.killed == [] and job.outcome is None


async def test_max_jobs_recycles_once_when_the_count_is_reached(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child, held = _Child(), HeldJobs(trio.CapacityLimiter(8))
    jobs = _hold(held, *(_record(f"j{i}") for i in range(5)))
    watch = _watch(child, held, max_jobs=3)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        _start(watch, *jobs[:2])
        await trio.sleep(1.0)
        assert child.recycled == [] and not watch.recycling
        _start(watch, jobs[2])
        await trio.sleep(1.0)
        _start(watch, *jobs[3:])  # held jobs may still start: it is recycled once
        await trio.sleep(10.0)
        nursery.cancel_scope.cancel()
    assert len(child.recycled) == 1 and watch.recycling
    assert watch.statistics().jobs_run == 5 and child.killed == []


async def test_memory_over_the_limit_recycles_at_the_next_sample(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child, held = _Child(rss=1000), HeldJobs(trio.CapacityLimiter(4))
    (job,) = _hold(held, _record("a"))
    watch = _watch(child, held, max_rss=5000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        _start(watch, job)
        await trio.sleep(SAMPLE_SECONDS * 3.5)
        assert child.recycled == []
        assert watch.statistics().rss_bytes == 1000 and watch.statistics().cpu_seconds == 1.5
        t0 = trio.current_time()
        child.rss = 5001
        await trio.sleep(SAMPLE_SECONDS * 3)
        nursery.cancel_scope.cancel()
    assert len(child.recycled) == 1
    assert t0 < child.recycled[0] <= t0 + SAMPLE_SECONDS
    assert watch.statistics().pid == 42 and watch.statistics().rss_bytes == 5001


async def test_a_child_over_the_memory_limit_runs_a_job_before_it_is_recycled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    child, held = _Child(rss=10_000), HeldJobs(trio.CapacityLimiter(4))
    (job,) = _hold(held, _record("a"))
    watch = _watch(child, held, max_rss=5000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        await trio.sleep(SAMPLE_SECONDS * 5)
        assert child.recycled == []  # a fresh child as big would follow it
        _start(watch, job)
        await trio.sleep(SAMPLE_SECONDS * 1.5)
        nursery.cancel_scope.cancel()
    assert len(child.recycled) == 1
