"""What a handler's ``RateLimited`` asks of the store, on every backend: a
rate window held full for a while (``hold_rate``), shorter or longer than
the window itself, and a job released not to be handed out before the hold
ends (``Release.retry_at``). The stores run on a ``FakeClock``, so every
wait asserted is exact."""

from __future__ import annotations

import pytest
import trio

from engine.store import NewJob, Release, Store
from protocols.lifecycle import JobState
from tests.store.helpers import DEADLINE, LEASE, FakeClock


async def test_a_hold_shorter_than_the_window_refuses_every_take_until_it_ends(
    store: Store, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.take_rate("embed", 5, 10.0, 1) == 0.0
        await store.hold_rate("embed", 5, 10.0, 3.0)
        assert await store.take_rate("embed", 5, 10.0, 1) == 3.0
        clock.advance(2.5)
        assert await store.take_rate("embed", 5, 10.0, 0.5) == 0.5
        clock.advance(0.5)
        # The hold is over; the take from before it still counts.
        assert [await store.take_rate("embed", 5, 10.0, 1) for _ in range(4)] == [0.0] * 4
        assert await store.take_rate("embed", 5, 10.0, 1) == 7.0
        # Other windows were never held.
        assert await store.take_rate("resize", 5, 10.0, 1) == 0.0


async def test_a_hold_longer_than_the_window_lasts_its_own_length(
    store: Store, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        await store.hold_rate("embed", 5, 10.0, 25.0)
        assert await store.take_rate("embed", 5, 10.0, 1) == 25.0
        clock.advance(20)
        assert await store.take_rate("embed", 5, 10.0, 1) == 5.0
        # A shorter hold meanwhile does not cut the longer one short.
        await store.hold_rate("embed", 5, 10.0, 1.0)
        assert await store.take_rate("embed", 5, 10.0, 1) == 5.0
        clock.advance(5)
        assert await store.take_rate("embed", 5, 10.0, 5) == 0.0


async def test_a_hold_of_no_time_holds_nothing_and_bad_limits_are_refused(
    store: Store, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        await store.hold_rate("embed", 5, 10.0, 0.0)
        await store.hold_rate("embed", 5, 10.0, -3.0)
        assert await store.take_rate("embed", 5, 10.0, 5) == 0.0
        for limit, per in [(0, 10.0), (5, 0.0), (5, float("inf"))]:
            with pytest.raises(ValueError):
                await store.hold_rate("embed", limit, per, 1.0)


async def test_a_release_with_a_due_time_is_not_handed_out_before_it(
    store: Store, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.add_jobs("b", [NewJob(type="echo", max_attempts=1)])
        (job,) = await store.claim_jobs("b", 1, owner="e", lease_seconds=LEASE)
        due = clock.now + 2.0
        release = Release(job_id=job.job_id, refund_attempt=True, retry_at=due)
        assert await store.apply([release], owner="e") == {job.job_id: JobState.PENDING}
        assert await store.next_due_at("b") == due
        assert await store.claim_jobs("b", 1, owner="e", lease_seconds=LEASE) == []
        clock.advance(2.0)
        (again,) = await store.claim_jobs("b", 1, owner="e", lease_seconds=LEASE)
        # Refunded: its one attempt is the one it uses now, with no error kept.
        assert (again.job_id, again.attempts, again.error) == (job.job_id, 1, None)
