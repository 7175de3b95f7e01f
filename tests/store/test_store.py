"""The ``Store`` contract, run against every backend (SQLite and Redis).

The ``store`` fixture (``conftest.py``) is parametrised over the backends, so
each test here runs once per backend and their behaviour cannot drift.
Stores read wall-clock time through an injected ``clock``; these tests drive
a ``FakeClock`` by hand, so nothing here sleeps. Store calls run in worker
threads (SQLite) or on sockets (Redis), which ``MockClock``'s autojump would
mistake for idleness, so the deadlines are real ``trio.fail_after`` ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

import engine.store
from engine.errors import BatchExists, BatchNotFound, ConfigError, Conflict
from engine.store import Complete, Fail, JobRecord, NewJob, Release, Store, open_store
from protocols.lifecycle import JobState
from tests.store.conftest import Opener
from tests.store.helpers import DEADLINE, LEASE, FakeClock, all_jobs, jobs_of

# -- batches ----------------------------------------------------------------------------


async def test_create_get_list_delete_batch(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        created = await store.create_batch("b1", "echo", {"note": "first", "n": [1, 2]})
        assert (created.batch_id, created.type, created.created_at) == ("b1", "echo", clock.now)
        assert created.options == {"note": "first", "n": [1, 2]}
        assert created.counts.total == 0
        clock.advance(1)
        await store.create_batch("b0", "noop")
        await store.add_jobs("b1", jobs_of(3))

        got = await store.get_batch("b1")
        assert got.options == {"note": "first", "n": [1, 2]}
        assert (got.counts.pending, got.counts.total) == (3, 3)
        listed = await store.list_batches()
        assert [b.batch_id for b in listed] == ["b1", "b0"]  # oldest first, not by name
        assert [b.counts.pending for b in listed] == [3, 0]
        assert (await store.get_batch("b0")).options == {}

        await store.acquire_run("b1", "engine-1", LEASE)
        await store.release_run("b1", "engine-1", finished=False)  # a run record remains
        await store.delete_batch("b1")
        with pytest.raises(BatchNotFound):
            await store.get_batch("b1")
        assert [b.batch_id for b in await store.list_batches()] == ["b0"]
        assert await store.queue_length() == 0
        assert await store.runs() == []
        assert await store.startable_batches(9, any_batch=True) == []


async def test_create_existing_batch(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo", {"v": 1})
        with pytest.raises(BatchExists) as info:
            await store.create_batch("b", "noop", {"v": 2})
        assert isinstance(info.value, Conflict)
        kept = await store.get_batch("b")
        assert (kept.type, kept.options) == ("echo", {"v": 1})


CALLS_NEEDING_A_BATCH: dict[str, Callable[[Store], Awaitable[object]]] = {
    "get_batch": lambda s: s.get_batch("nope"),
    "delete_batch": lambda s: s.delete_batch("nope"),
    "add_jobs": lambda s: s.add_jobs("nope", jobs_of(1)),
    "counts": lambda s: s.counts("nope"),
    "list_jobs": lambda s: s.list_jobs("nope"),
    "retry_failed": lambda s: s.retry_failed("nope"),
    "acquire_run": lambda s: s.acquire_run("nope", "engine", LEASE),
}


@pytest.mark.parametrize("call", CALLS_NEEDING_A_BATCH.values(), ids=CALLS_NEEDING_A_BATCH)
async def test_unknown_batch(store: Store, call: Callable[[Store], Awaitable[object]]) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("other", "echo")
        with pytest.raises(BatchNotFound, match="nope"):
            await call(store)
        assert await store.runs() == []
        assert await store.queue_length() == 0


async def test_unknown_batch_has_nothing_to_claim(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.claim_jobs("nope", 5, owner="e", lease_seconds=LEASE) == []
        assert await store.next_due_at("nope") is None


# -- adding and claiming ----------------------------------------------------------------


async def test_idempotency_keys(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.create_batch("c", "echo")
        keyed = [NewJob(type="echo", payload=n, key=k) for n, k in enumerate("xyx")]
        first = await store.add_jobs("b", [*keyed, *jobs_of(2)])
        assert (first.enqueued, first.duplicates, len(first.job_ids)) == (4, 1, 4)
        assert all(len(j) == 32 and int(j, 16) >= 0 for j in first.job_ids)

        again = await store.add_jobs("b", [NewJob(type="echo", key=k) for k in "yzz"])
        assert (again.enqueued, again.duplicates) == (1, 2)
        elsewhere = await store.add_jobs("c", [NewJob(type="echo", key="x")])
        assert (elsewhere.enqueued, elsewhere.duplicates) == (1, 0)

        jobs = await all_jobs(store, "b")
        assert [j.job_id for j in jobs] == [*first.job_ids, *again.job_ids]
        assert [(j.key, j.payload) for j in jobs[:2]] == [("x", 0), ("y", 1)]  # the first x
        assert [j.key for j in jobs] == ["x", "y", None, None, "z"]


async def test_priority_then_fifo(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        priorities = [0, 5, 0, 5, -1, 10, 0]
        added = await store.add_jobs(
            "b", [NewJob(type="echo", payload=n, priority=p) for n, p in enumerate(priorities)]
        )
        claimed: list[JobRecord] = []
        while batch := await store.claim_jobs("b", 2, owner="e", lease_seconds=LEASE):
            claimed += batch
        assert [j.payload for j in claimed] == [5, 1, 3, 0, 2, 6, 4]
        assert {j.job_id for j in claimed} == set(added.job_ids)
        first = claimed[0]
        assert (first.state, first.attempts, first.priority) == (JobState.ACTIVE, 1, 10)


async def test_delayed_jobs_wait_until_due(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        start = clock.now
        await store.add_jobs("b", [NewJob(type="echo", payload="late", delay_seconds=10)])
        await store.add_jobs("b", [NewJob(type="echo", payload="now", priority=-5)])
        assert await store.next_due_at("b") == start

        claimed = await store.claim_jobs("b", 5, owner="e", lease_seconds=LEASE)
        assert [j.payload for j in claimed] == ["now"]
        assert await store.next_due_at("b") == start + 10
        clock.advance(9.5)
        assert await store.claim_jobs("b", 5, owner="e", lease_seconds=LEASE) == []
        clock.advance(0.5)
        claimed = await store.claim_jobs("b", 5, owner="e", lease_seconds=LEASE)
        assert [(j.payload, j.available_at) for j in claimed] == [("late", start + 10)]
        assert await store.next_due_at("b") is None


async def test_claim_nothing(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.add_jobs("b", jobs_of(3))
        assert await store.claim_jobs("b", 0, owner="e", lease_seconds=LEASE) == []
        assert (await store.counts("b")).pending == 3


async def claim_until_empty(store: Store, owner: str, got: list[str]) -> None:
    while jobs := await store.claim_jobs("b", 7, owner=owner, lease_seconds=LEASE):
        got += [j.job_id for j in jobs]
        await trio.lowlevel.checkpoint()


async def test_two_tasks_never_claim_the_same_job(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        added = await store.add_jobs("b", jobs_of(300))
        got: dict[str, list[str]] = {"e1": [], "e2": []}
        async with trio.open_nursery() as nursery:
            for owner, ids in got.items():
                nursery.start_soon(claim_until_empty, store, owner, ids)
        assert got["e1"] and got["e2"]
        assert not set(got["e1"]) & set(got["e2"])
        assert sorted(got["e1"] + got["e2"]) == sorted(added.job_ids)


async def test_two_connections_never_claim_the_same_job(
    open_backend: Opener, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        async with open_backend(clock) as one, open_backend(clock) as two:
            await one.create_batch("b", "echo")
            added = await two.add_jobs("b", jobs_of(1000))
            got: list[list[str]] = [[], []]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(claim_until_empty, one, "e1", got[0])
                nursery.start_soon(claim_until_empty, two, "e2", got[1])
            assert not set(got[0]) & set(got[1])
            assert sorted(got[0] + got[1]) == sorted(added.job_ids)
            assert (await one.counts("b")).active == 1000


# -- outcomes ---------------------------------------------------------------------------


async def test_apply_each_outcome(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        ids = (await store.add_jobs("b", jobs_of(6, max_attempts=2))).job_ids
        last = (await store.add_jobs("b", jobs_of(1))).job_ids[0]  # max_attempts=1
        await store.claim_jobs("b", 10, owner="e", lease_seconds=LEASE)
        retry_at = clock.now + 30
        outcomes = [
            Complete(job_id=ids[0], result={"ok": [1, 2]}),
            Fail(job_id=ids[1], error="boom", traceback="tb", retry_at=retry_at),
            Fail(job_id=ids[2], error="bad", traceback="tb2"),
            Release(job_id=ids[3], refund_attempt=True),
            Release(job_id=ids[4], refund_attempt=False, error="child crashed"),
            Release(job_id=last, refund_attempt=False, error="child crashed"),
            Complete(job_id="no-such-job"),
        ]
        pending, failed = JobState.PENDING, JobState.FAILED
        assert await store.apply(outcomes, owner="e") == {
            ids[0]: JobState.COMPLETED,
            ids[1]: pending,
            ids[2]: failed,
            ids[3]: pending,
            ids[4]: pending,
            last: failed,
        }
        jobs = {j.job_id: j for j in await all_jobs(store, "b")}
        seen = [(jobs[i].state, jobs[i].attempts, jobs[i].error) for i in [*ids[:5], last]]
        assert seen == [
            (JobState.COMPLETED, 1, None),
            (pending, 1, "boom"),
            (failed, 1, "bad"),
            (pending, 0, None),
            (pending, 1, "child crashed"),
            (failed, 1, "child crashed"),
        ]
        assert jobs[ids[0]].result == {"ok": [1, 2]}
        assert (jobs[ids[1]].available_at, jobs[ids[2]].traceback) == (retry_at, "tb2")
        assert jobs[ids[5]].state is JobState.ACTIVE  # no outcome, untouched

        # The retry waits for its time; the others are due at once.
        again = await store.claim_jobs("b", 10, owner="e", lease_seconds=LEASE)
        assert {j.job_id for j in again} == {ids[3], ids[4]}
        clock.advance(30)
        assert [j.job_id for j in await store.claim_jobs("b", 10, owner="e", lease_seconds=1)] == [
            ids[1]
        ]


async def test_apply_touches_only_active_jobs(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        a, b, pending = (await store.add_jobs("b", jobs_of(3))).job_ids
        await store.claim_jobs("b", 2, owner="e", lease_seconds=LEASE)
        # Of two outcomes for one job, the first counts.
        first = await store.apply(
            [Complete(job_id=a, result=1), Fail(job_id=a, error="late")], owner="e"
        )
        assert first == {a: JobState.COMPLETED}
        stale = [Fail(job_id=a, error="stale"), Complete(job_id=pending), Complete(job_id=b)]
        assert await store.apply(stale, owner="e") == {b: JobState.COMPLETED}
        assert await store.apply([], owner="e") == {}
        jobs = await all_jobs(store, "b")
        assert [(j.state, j.error, j.result) for j in jobs] == [
            (JobState.COMPLETED, None, 1),
            (JobState.COMPLETED, None, None),
            (JobState.PENDING, None, None),
        ]


async def test_retry_failed(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        ids = (await store.add_jobs("b", jobs_of(3, max_attempts=3))).job_ids
        for _ in range(2):
            await store.claim_jobs("b", 3, owner="e", lease_seconds=LEASE)
            await store.apply([Release(job_id=i, refund_attempt=False) for i in ids], owner="e")
        await store.claim_jobs("b", 3, owner="e", lease_seconds=LEASE)
        await store.apply(
            [
                Fail(job_id=ids[0], error="x", traceback="tb"),
                Complete(job_id=ids[1]),
                Release(job_id=ids[2], refund_attempt=False, error="y"),
            ],
            owner="e",
        )
        assert (await store.counts("b")).failed == 2
        clock.advance(5)
        assert await store.retry_failed("b") == 2
        assert await store.retry_failed("b") == 0
        jobs = await all_jobs(store, "b")
        assert [(j.state, j.attempts, j.error, j.traceback) for j in jobs] == [
            (JobState.PENDING, 0, None, None),
            (JobState.COMPLETED, 3, None, None),
            (JobState.PENDING, 0, None, None),
        ]
        assert jobs[0].available_at == clock.now


# -- leases -----------------------------------------------------------------------------


async def test_leases_renew_and_expire(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.add_jobs("b", jobs_of(3))
        mine = await store.claim_jobs("b", 2, owner="e1", lease_seconds=10)
        theirs = await store.claim_jobs("b", 1, owner="e2", lease_seconds=10)
        clock.advance(8)
        assert await store.renew_leases("e1", 10) == 2
        assert await store.renew_leases("nobody", 10) == 0
        clock.advance(2)  # e2's lease ends now; e1's at +18
        assert await store.recover_expired_leases() == 1
        jobs = {j.job_id: j for j in await all_jobs(store, "b")}
        assert (jobs[theirs[0].job_id].state, jobs[theirs[0].job_id].attempts) == (
            JobState.PENDING,
            0,
        )
        assert all(jobs[j.job_id].state is JobState.ACTIVE for j in mine)
        # A recovered job's lease is gone: renewing its old owner finds nothing.
        assert await store.renew_leases("e2", 10) == 0
        # Done jobs hold no lease either.
        await store.apply([Complete(job_id=mine[0].job_id)], owner="e1")
        assert await store.renew_leases("e1", 10) == 1
        clock.advance(10)
        assert await store.recover_expired_leases() == 1
        assert await store.recover_expired_leases() == 0
        counts = await store.counts("b")
        assert (counts.pending, counts.active, counts.completed) == (2, 0, 1)
        again = await store.claim_jobs("b", 5, owner="e3", lease_seconds=10)
        assert sorted(j.attempts for j in again) == [1, 1]


async def test_queue_length(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.queue_length() == 0
        for batch_id, n in [("b", 4), ("c", 3)]:
            await store.create_batch(batch_id, "echo")
            await store.add_jobs(batch_id, jobs_of(n))
        await store.claim_jobs("b", 3, owner="e", lease_seconds=LEASE)
        assert await store.queue_length() == 4
        await store.delete_batch("c")
        assert await store.queue_length() == 1


# -- open_store -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("redis://localhost:6379/zero", "expected redis://HOST:PORT/DB"),
        ("redis://:secret@/0", "expected redis://HOST:PORT/DB"),
        ("postgres://db/batchyard", "'postgres://db/batchyard'.*unknown scheme"),
        ("batchyard.db", "'batchyard.db'"),
        ("sqlite://host/batchyard.db", "no host"),
        ("sqlite:///", "empty"),
    ],
)
async def test_open_store_refuses(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        async with open_store(url):
            pass


def test_exports() -> None:
    assert set(engine.store.__all__) == {
        "AddResult",
        "BatchRecord",
        "Claim",
        "Complete",
        "Counts",
        "EngineRecord",
        "EventLog",
        "Fail",
        "FollowUp",
        "JobPage",
        "JobRecord",
        "NewJob",
        "Outcome",
        "Release",
        "Step",
        "RunRecord",
        "Store",
        "open_store",
    }
    assert all(hasattr(engine.store, name) for name in engine.store.__all__)
