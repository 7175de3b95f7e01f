"""``Store.apply_and_claim``, the hot path's one step per burst, on every
backend: the outcomes recorded as ``apply`` records them, then a claim as
``claim_jobs`` makes it, in one transaction."""

from __future__ import annotations

from typing import Any

import coredis
import pytest
import trio

from engine.errors import StoreUnavailable
from engine.store import Complete, Fail, Release, Store
from engine.store.records import Claim
from protocols.lifecycle import JobState
from tests.store.helpers import DEADLINE, LEASE, FakeClock, all_jobs, jobs_of


def _claim(limit: int, lease: float = LEASE) -> Claim:
    return Claim(batch_id="b", limit=limit, lease_seconds=lease)


async def test_records_then_claims_in_priority_order(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        ids = list((await store.add_jobs("b", jobs_of(6, max_attempts=2))).job_ids)
        first = await store.claim_jobs("b", 3, owner="e", lease_seconds=LEASE)
        assert [j.job_id for j in first] == ids[:3]
        outcomes = [
            Complete(job_id=ids[0], result=[1]),
            Fail(job_id=ids[1], error="boom", retry_at=clock.now + 30),
            Release(job_id=ids[2], refund_attempt=True),
            Complete(job_id="no-such-job"),
        ]
        step = await store.apply_and_claim(outcomes, owner="e", claim=_claim(3))
        assert step.states == {
            ids[0]: JobState.COMPLETED,
            ids[1]: JobState.PENDING,
            ids[2]: JobState.PENDING,
        }
        # The released job is due at once and the oldest: claimed again in
        # the same step, its attempt refunded then counted anew; the one to
        # retry is not due yet.
        assert [j.job_id for j in step.claimed] == [ids[2], ids[3], ids[4]]
        assert [j.attempts for j in step.claimed] == [1, 1, 1]
        assert all(j.state is JobState.ACTIVE for j in step.claimed)
        jobs = {j.job_id: j for j in await all_jobs(store, "b")}
        assert jobs[ids[0]].result == [1]
        assert (jobs[ids[1]].state, jobs[ids[1]].error) == (JobState.PENDING, "boom")
        assert jobs[ids[5]].state is JobState.PENDING
        # Outcomes alone, or a claim alone, are steps too.
        done = [Complete(job_id=j.job_id) for j in step.claimed]
        alone = await store.apply_and_claim(done, owner="e", claim=_claim(0))
        assert (len(alone.states), alone.claimed) == (3, [])
        rest = await store.apply_and_claim([], owner="e", claim=_claim(9))
        assert (rest.states, [j.job_id for j in rest.claimed]) == ({}, [ids[5]])
        assert (await store.counts("b")).active == 1


async def test_records_only_the_owners_jobs_and_claims_under_its_lease(
    store: Store, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        a, b, c = (await store.add_jobs("b", jobs_of(3))).job_ids
        await store.claim_jobs("b", 1, owner="other", lease_seconds=LEASE)
        step = await store.apply_and_claim(
            [Complete(job_id=a)], owner="e", claim=_claim(5, lease=10)
        )
        assert step.states == {}
        assert [j.job_id for j in step.claimed] == [b, c]
        clock.advance(11)
        # e's leases ran out (10 s), other's did not.
        assert await store.recover_expired_leases() == 2
        assert (await store.counts("b")).active == 1


async def test_completions_some_not_ours_move_only_ours_and_claim_once(
    store: Store, clock: FakeClock
) -> None:
    """A step of completions alone, some for jobs not under the owner's
    lease (another's, none, twice the same): only the owner's complete,
    and the claim takes each pending job once."""
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        ids = list((await store.add_jobs("b", jobs_of(6))).job_ids)
        mine = await store.claim_jobs("b", 2, owner="e", lease_seconds=LEASE)
        theirs = await store.claim_jobs("b", 1, owner="other", lease_seconds=LEASE)
        outcomes = [
            Complete(job_id=mine[0].job_id, result=1),
            Complete(job_id=theirs[0].job_id),
            Complete(job_id=mine[0].job_id, result=2),
            Complete(job_id="no-such-job"),
            Complete(job_id=mine[1].job_id),
        ]
        step = await store.apply_and_claim(outcomes, owner="e", claim=_claim(9))
        assert step.states == dict.fromkeys([ids[0], ids[1]], JobState.COMPLETED)
        assert [(j.job_id, j.attempts) for j in step.claimed] == [(i, 1) for i in ids[3:]]
        counts = await store.counts("b")
        assert (counts.completed, counts.active, counts.pending) == (2, 4, 0)
        jobs = {j.job_id: j for j in await all_jobs(store, "b")}
        assert jobs[ids[0]].result == 1
        assert jobs[ids[2]].state is JobState.ACTIVE  # still the other owner's


async def test_a_step_whose_reply_was_lost_hands_its_claim_to_the_next(
    redis_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis: a step that ran but whose reply never came recorded its
    outcomes and took jobs no caller knows of; the owner's next claim of the
    batch (a plain one here) hands those out first, attempt not counted
    twice."""
    from engine.store.redis import open_redis_store

    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url, clock=clock) as store:
            await store.create_batch("b", "echo")
            ids = list((await store.add_jobs("b", jobs_of(4))).job_ids)
            await store.claim_jobs("b", 1, owner="e", lease_seconds=LEASE)
            script = store._scripts["apply_and_claim"]

            async def reply_lost(**kwargs: Any) -> Any:
                await script(**kwargs)
                raise coredis.exceptions.ConnectionError("Connection lost")

            monkeypatch.setitem(store._scripts, "apply_and_claim", reply_lost)
            with pytest.raises(StoreUnavailable):
                await store.apply_and_claim([Complete(job_id=ids[0])], owner="e", claim=_claim(2))
            monkeypatch.setitem(store._scripts, "apply_and_claim", script)
            assert (await store.counts("b")).completed == 1
            again = await store.claim_jobs("b", 9, owner="e", lease_seconds=LEASE)
            assert [(j.job_id, j.attempts) for j in again] == [
                (ids[1], 1),
                (ids[2], 1),
                (ids[3], 1),
            ]


RESULTS: list[Any] = [
    None,
    2**70,
    -(2**64) - 1,
    " a leading space",
    'quotes " and \\ backslashes, é, \u2028, \U0001f600',
    {"nested": [1, 2.5, {"wide": 2**80}], "": None},
    [],
]


async def test_completions_keep_their_results_exactly(store: Store) -> None:
    """Results of every kind of JSON value, integers of any size included,
    come back as they were, however many completions one step records."""
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        ids = list((await store.add_jobs("b", jobs_of(len(RESULTS) + 1))).job_ids)
        await store.claim_jobs("b", len(ids), owner="e", lease_seconds=LEASE)
        outcomes = [Complete(job_id=i, result=r) for i, r in zip(ids, RESULTS, strict=False)]
        outcomes.append(Complete(job_id=ids[0], result="a second outcome does not count"))
        outcomes.append(Fail(job_id=ids[-1], error="boom"))
        step = await store.apply_and_claim(outcomes, owner="e", claim=_claim(0))
        assert step.states == {
            **dict.fromkeys(ids[:-1], JobState.COMPLETED),
            ids[-1]: JobState.FAILED,
        }
        jobs = {j.job_id: j for j in await all_jobs(store, "b")}
        assert [jobs[i].result for i in ids[:-1]] == RESULTS
        assert (jobs[ids[-1]].error, jobs[ids[-1]].result) == ("boom", None)
