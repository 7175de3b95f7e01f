"""Follow-up jobs (``Complete.follow_ups``) on every backend: added in the
step that completes their job, and only then."""

from __future__ import annotations

import trio

from engine.store import Complete, Fail, FollowUp, NewJob, Release, Store
from protocols.lifecycle import JobState
from tests.store.helpers import DEADLINE, LEASE, FakeClock, all_jobs, jobs_of


def _follow(batch_id: str, *payloads: object, **fields: object) -> tuple[FollowUp, ...]:
    return tuple(
        FollowUp(batch_id=batch_id, job=NewJob(type="noop", payload=p, **fields))  # type: ignore[arg-type]
        for p in payloads
    )


async def _claim(store: Store, batch_id: str, n: int, owner: str = "e") -> list[str]:
    claimed = await store.claim_jobs(batch_id, n, owner=owner, lease_seconds=LEASE)
    return [job.job_id for job in claimed]


async def test_follow_ups_are_added_with_the_completion(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("a", "echo")
        await store.create_batch("b", "echo")
        await store.add_jobs("a", jobs_of(1))
        (job_id,) = await _claim(store, "a", 1)
        follow = (
            *_follow("a", 1, 2**70),
            *_follow("b", {"x": 3}, priority=5, delay_seconds=9, timeout_seconds=2.5),
        )
        states = await store.apply([Complete(job_id=job_id, follow_ups=follow)], owner="e")
        assert states == {job_id: JobState.COMPLETED}
        own = [job for job in await all_jobs(store, "a") if job.job_id != job_id]
        assert [(j.type, j.payload, j.state) for j in own] == [
            ("noop", 1, JobState.PENDING),
            ("noop", 2**70, JobState.PENDING),
        ]
        (other,) = await all_jobs(store, "b")
        assert (other.payload, other.priority, other.timeout_seconds) == ({"x": 3}, 5, 2.5)
        assert other.available_at - other.created_at == 9
        assert (await store.counts("a")).pending == 2
        # A running batch picks up what was added to itself.
        assert sorted(map(str, await _claim(store, "a", 5))) == sorted(j.job_id for j in own)


async def test_a_job_that_does_not_complete_adds_nothing(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("a", "echo")
        await store.add_jobs("a", jobs_of(3))
        first, second, third = await _claim(store, "a", 3)
        await store.apply(
            [
                Fail(job_id=first, error="boom"),
                Release(job_id=second, refund_attempt=True),
                # Not under this owner's lease: skipped, and so are its follow-ups.
            ],
            owner="e",
        )
        skipped = Complete(job_id=third, follow_ups=_follow("a", "late"))
        assert await store.apply([skipped], owner="someone-else") == {}
        assert (await store.counts("a")).total == 3
        # Of two outcomes for one job the first counts, follow-ups and all.
        twice = [Fail(job_id=third, error="x"), Complete(job_id=third, follow_ups=_follow("a", 1))]
        assert await store.apply(twice, owner="e") == {third: JobState.FAILED}
        assert (await store.counts("a")).total == 3


async def test_keys_hold_and_a_deleted_batch_takes_nothing(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("a", "echo")
        await store.create_batch("gone", "echo")
        await store.delete_batch("gone")
        await store.add_jobs("a", [NewJob(type="echo", key="k")])
        (job_id,) = await _claim(store, "a", 1)
        follow = (*_follow("a", 1, key="k"), *_follow("a", 2, key="n"), *_follow("a", 3, key="n"))
        follow += _follow("gone", 4)
        states = await store.apply([Complete(job_id=job_id, follow_ups=follow)], owner="e")
        assert states == {job_id: JobState.COMPLETED}
        assert [j.payload for j in await all_jobs(store, "a", state=JobState.PENDING)] == [2]
        await store.create_batch("gone", "echo")
        assert (await store.counts("gone")).total == 0
