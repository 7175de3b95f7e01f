"""A job's start as the engine records it, on ``MockClock``.

The dispatcher grants a type rate's start and notes when
(``HeldJob.type_rate_grant``); the child reports the start later
(``JobStarted``); ``HeldJobs.restamp`` moves the take there, so the next
grant that could share a window with that start waits for it, and notes
the start (with its cost) among the run's recent starts, which the next
child of the run is handed. Wall clock here is ``trio_wall_clock``, as a
fake engine's is.
"""

from __future__ import annotations

import trio
import trio.testing

from engine.config.settings import RateLimit
from engine.core.held import HeldJob, HeldJobs
from engine.core.limits import RecentStarts
from engine.core.retry import Patience, StoreRetry
from engine.core.type_gate import TypeGate
from engine.store.records import JobRecord
from engine.testing.harness import open_fake_store, trio_wall_clock
from protocols import ipc
from protocols.lifecycle import JobState


def _held(jobs: HeldJobs, job_id: str, cost: float = 1.0) -> HeldJob:
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
        cost=cost,
    )
    return jobs.add(record, object())


async def test_a_start_is_noted_with_its_cost_among_the_runs_recent_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts = RecentStarts(RateLimit(count=5, per_seconds=10.0))
    jobs = HeldJobs(trio.CapacityLimiter(5), starts=starts)
    jobs.restamp(_held(jobs, "first", cost=2.0), 1000.0)
    jobs.restamp(_held(jobs, "second"), 1004.0)
    # A child bound at 1010.0 is handed only the start still in its window.
    assert starts.handover(1010.0) == ipc.StartRate(
        count=5, per_seconds=10.0, recent=(ipc.RecentStart(started_at=1004.0, cost=1.0),)
    )
    assert starts.handover(1009.0).recent == (
        ipc.RecentStart(started_at=1000.0, cost=2.0),
        ipc.RecentStart(started_at=1004.0, cost=1.0),
    )


def test_recent_starts_forget_what_left_the_window_by_the_latest_start() -> None:
    starts = RecentStarts(RateLimit(count=1, per_seconds=2.0))
    for at in (100.0, 101.0, 102.0, 103.5):
        starts.note(at, 1.0)
    # Handing over at an earlier moment shows what was kept: the starts
    # within 2 s of the latest one.
    assert [s.started_at for s in starts.handover(0.0).recent] == [102.0, 103.5]


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
