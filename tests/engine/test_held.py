"""``HeldJobs.add_after``: a job claimed back while the run still holds it
is held, on its own credit, only once the held one is popped."""

from __future__ import annotations

import trio

from engine.core.held import HeldJobs
from engine.store.records import JobRecord
from protocols.lifecycle import JobState


def _record(job_id: str, attempts: int) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        batch_id="b",
        type="flaky",
        state=JobState.ACTIVE,
        payload=None,
        attempts=attempts,
        max_attempts=3,
        key=None,
        priority=0,
        result=None,
        error=None,
        traceback=None,
        created_at=0.0,
        available_at=0.0,
    )


def _credit(held: HeldJobs) -> object:
    credit = object()
    held.credits.acquire_on_behalf_of_nowait(credit)
    return credit


def test_a_job_claimed_back_is_held_once_its_predecessor_is_popped() -> None:
    held = HeldJobs(trio.CapacityLimiter(2))
    first, again = _record("x", 1), _record("x", 2)
    held.add(first, _credit(held))
    held.add_after(again, _credit(held))
    assert held.holds(first) and not held.holds(again)
    assert len(held) == 1 and held.credits.borrowed_tokens == 2
    popped = held.pop("x")
    assert popped.record is first
    assert held.holds(again) and not held.holds(first)
    assert len(held) == 1 and held.credits.borrowed_tokens == 1
    assert held.pop("x").record is again
    assert len(held) == 0 and held.credits.borrowed_tokens == 0
