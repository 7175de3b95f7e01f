"""A job's rate-limit takes move to its handler's real start, on ``MockClock``.

The dispatcher grants a start and notes when (``HeldJob.rate_grant``,
``type_rate_grant``); the child reports the start later (``JobStarted``);
``HeldJobs.restamp`` moves the takes there, so the next grant that could
share a window with that start waits for it. Wall clock here is
``trio_wall_clock``, as a fake engine's is.
"""

from __future__ import annotations

import trio
import trio.testing

from engine.config.settings import RateLimit
from engine.core.held import HeldJob, HeldJobs
from engine.core.limits import RateLimiter
from engine.core.retry import Patience, StoreRetry
from engine.core.type_gate import TypeGate
from engine.store.records import JobRecord
from engine.testing.harness import open_fake_store, trio_wall_clock
from protocols.lifecycle import JobState


def _held(jobs: HeldJobs, job_id: str) -> HeldJob:
    record = JobRecord(
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
    )
    return jobs.add(record, object())


async def test_delay_moves_a_holders_start_later_and_keeps_the_window_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(2, 10.0)
    t0 = trio.current_time()
    await limiter.acquire(holder="a")
    await trio.sleep(1.0)
    await limiter.acquire(holder="b")
    limiter.delay("a", 3.0)  # a counts from t0 + 3, after b
    limiter.delay("a", -1.0)  # never earlier
    limiter.delay("nobody", 5.0)
    assert limiter.next_start_at() == t0 + 11.0
    await limiter.acquire()
    assert trio.current_time() == t0 + 11.0
    # a (until t0 + 13) still holds its place; without the delay it would
    # have left at t0 + 10.
    assert limiter.next_start_at() == t0 + 13.0


async def test_a_start_reported_late_makes_the_next_batch_grant_wait_for_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(1, 10.0)
    jobs = HeldJobs(trio.CapacityLimiter(5))
    t0 = trio.current_time()
    first = _held(jobs, "first")
    assert await limiter.acquire(holder="first") == t0
    first.rate_grant = (limiter, trio_wall_clock())
    # The handler starts 2 s after the grant (it queued in the child).
    jobs.restamp(first, trio_wall_clock() + 2.0)
    await limiter.acquire(holder="second")
    assert trio.current_time() == t0 + 12.0


async def test_a_start_reported_late_makes_the_next_type_grant_wait_for_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_store() as store:
        rate = RateLimit(count=1, per_seconds=10.0)
        gate = TypeGate(store, "embed", rate=rate, lease_seconds=30.0)
        jobs = HeldJobs(trio.CapacityLimiter(5))
        t0 = trio.current_time()
        first = _held(jobs, "first")
        granted_at = await gate.take_rate(
            "first",
            1.0,
            trio.lowlevel.checkpoint,
            trio_wall_clock,
            retry=StoreRetry(),
            patience=Patience(),
        )
        assert granted_at == trio_wall_clock()
        first.type_rate_grant = (gate, granted_at)
        jobs.restamp(first, trio_wall_clock() + 2.5)
        await jobs.move_type_starts()
        await gate.take_rate(
            "second",
            1.0,
            trio.lowlevel.checkpoint,
            trio_wall_clock,
            retry=StoreRetry(),
            patience=Patience(),
        )
        assert trio.current_time() == t0 + 12.5
