"""``Store.counts_by_type`` on every backend: the jobs per job type (the
job's own, whatever its batch's) and state, right after every kind of
state change, and equal to a recount of ``list_jobs`` after any sequence
of them."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import BatchNotFound
from engine.store import Complete, Counts, Fail, FollowUp, NewJob, Release, Store
from engine.store.records import Claim
from engine.store.redis import open_redis_store
from engine.store.sqlite import open_sqlite_store
from protocols.lifecycle import JobState
from tests.redis_server import redis_command
from tests.store.helpers import DEADLINE, LEASE, FakeClock, all_jobs


def _jobs(type_name: str, n: int, **fields: Any) -> list[NewJob]:
    return [NewJob(type=type_name, payload={"i": i}, **fields) for i in range(n)]


async def _recount(store: Store) -> dict[str, Counts]:
    """Jobs per type and state, counted from every page of every batch."""
    counted: Counter[tuple[str, JobState]] = Counter()
    for batch in await store.list_batches():
        for job in await all_jobs(store, batch.batch_id):
            counted[job.type, job.state] += 1
    per_type: dict[str, dict[str, int]] = {}
    for (type_name, state), n in counted.items():
        per_type.setdefault(type_name, {})[state.value] = n
    return {name: Counts(**states) for name, states in per_type.items()}


async def _check(store: Store, **expected: tuple[int, int, int, int]) -> None:
    """``counts_by_type`` is ``expected`` (type → pending, active,
    completed, failed) and agrees with a recount."""
    counts = await store.counts_by_type()
    assert counts == {
        name: Counts(**dict(zip(_STATES, n, strict=True))) for name, n in expected.items()
    }
    assert counts == await _recount(store)


_STATES = ("pending", "active", "completed", "failed")


async def _claim(store: Store, batch_id: str, n: int, owner: str = "e") -> list[str]:
    claimed = await store.claim_jobs(batch_id, n, owner=owner, lease_seconds=LEASE)
    return [job.job_id for job in claimed]


async def test_an_empty_store_has_no_types(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.counts_by_type() == {}
        await store.create_batch("b", "echo")
        assert await store.counts_by_type() == {}


async def test_jobs_count_under_their_own_type_through_every_change(
    store: Store, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        added = await store.add_jobs(
            "b", _jobs("echo", 3) + _jobs("fail", 2, max_attempts=2) + _jobs("echo", 1, key="k")
        )
        assert added.enqueued == 6
        await store.add_jobs("b", _jobs("echo", 1, key="k"))  # a duplicate adds nothing
        await _check(store, echo=(4, 0, 0, 0), fail=(2, 0, 0, 0))

        assert len(await _claim(store, "b", 6)) == 6
        e1, e2, e3, f1, f2, e4 = [job.job_id for job in await all_jobs(store, "b")]
        await _check(store, echo=(0, 4, 0, 0), fail=(0, 2, 0, 0))

        await store.apply(
            [
                Complete(job_id=e1, result=1),
                Fail(job_id=f1, error="again", retry_at=clock.now),
                Fail(job_id=f2, error="for good"),
                Release(job_id=e2, refund_attempt=True),
            ],
            owner="e",
        )
        await _check(store, echo=(1, 2, 1, 0), fail=(1, 0, 0, 1))

        # An outcome of another owner's job changes nothing.
        await store.apply([Complete(job_id=e3)], owner="someone else")
        await _check(store, echo=(1, 2, 1, 0), fail=(1, 0, 0, 1))

        # A follow-up of a new type joins with the completion, and the
        # same step claims the first pending job (e2).
        follow = FollowUp(batch_id="b", job=NewJob(type="noop", payload=None))
        step = await store.apply_and_claim(
            [Complete(job_id=e3, follow_ups=(follow,))],
            owner="e",
            claim=Claim(batch_id="b", limit=1, lease_seconds=LEASE),
        )
        assert len(step.claimed) == 1
        await _check(store, echo=(0, 2, 2, 0), fail=(1, 0, 0, 1), noop=(1, 0, 0, 0))

        # Out of attempts, a release that counts the attempt fails the job.
        (again,) = [j for j in await _claim(store, "b", 5) if j == f1]
        await store.apply([Release(job_id=again, refund_attempt=False, error="crash")], owner="e")
        await _check(store, echo=(0, 2, 2, 0), fail=(0, 0, 0, 2), noop=(0, 1, 0, 0))

        assert await store.retry_failed("b") == 2
        await _check(store, echo=(0, 2, 2, 0), fail=(2, 0, 0, 0), noop=(0, 1, 0, 0))

        assert await store.cancel_job(f1) is JobState.PENDING
        await _check(store, echo=(0, 2, 2, 0), fail=(1, 0, 0, 1), noop=(0, 1, 0, 0))
        assert await store.cancel_job(e4) is JobState.ACTIVE  # asked of its engine only
        await _check(store, echo=(0, 2, 2, 0), fail=(1, 0, 0, 1), noop=(0, 1, 0, 0))

        assert await store.retry_job(f1)
        assert not await store.retry_job(e1)  # completed: left as it is
        await _check(store, echo=(0, 2, 2, 0), fail=(2, 0, 0, 0), noop=(0, 1, 0, 0))

        clock.advance(LEASE + 1)
        assert await store.recover_expired_leases() == 3
        await _check(store, echo=(2, 0, 2, 0), fail=(2, 0, 0, 0), noop=(1, 0, 0, 0))

        await _claim(store, "b", 2, owner="dead")
        assert await store.recover_engine("dead") == 2
        await _check(store, echo=(2, 0, 2, 0), fail=(2, 0, 0, 0), noop=(1, 0, 0, 0))


async def test_types_are_counted_across_batches_and_leave_with_them(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("a", "echo")
        await store.create_batch("b", "fail")
        await store.add_jobs("a", _jobs("echo", 2) + _jobs("fail", 1))
        await store.add_jobs("b", _jobs("fail", 2))
        (first,) = await _claim(store, "a", 1)
        await store.apply([Complete(job_id=first)], owner="e")
        await _claim(store, "b", 1)
        await _check(store, echo=(1, 0, 1, 0), fail=(2, 1, 0, 0))
        await store.delete_batch("b")
        await _check(store, echo=(1, 0, 1, 0), fail=(1, 0, 0, 0))
        await store.delete_batch("a")
        await _check(store)


# One step of the property test: an operation and the numbers it picks with.
_STEP = st.tuples(
    st.sampled_from(
        [
            "add",
            "claim",
            "complete",
            "retry",
            "fail",
            "release",
            "release-counted",
            "follow-up",
            "retry-failed",
            "retry-job",
            "cancel",
            "expire",
            "delete",
        ]
    ),
    st.integers(0, 7),
    st.sampled_from(["echo", "fail", "noop"]),
)


async def test_counts_by_type_always_equal_a_recount(store: Store, clock: FakeClock) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(steps=st.lists(_STEP, max_size=25))
    def check(steps: list[tuple[str, int, str]]) -> None:
        batches = [uuid.uuid4().hex, uuid.uuid4().hex]
        for batch_id in batches:
            call(store.create_batch, batch_id, "echo")
        for kind, n, type_name in steps:
            call(_step, store, clock, batches, kind, n, type_name)
            assert call(store.counts_by_type) == call(_recount, store)
        for batch_id in batches:
            with contextlib.suppress(BatchNotFound):
                call(store.delete_batch, batch_id)
        assert call(store.counts_by_type) == call(_recount, store)

    def call(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return trio.from_thread.run(functools.partial(fn, *args))

    with trio.fail_after(600):
        await trio.to_thread.run_sync(check)


async def _step(
    store: Store, clock: FakeClock, batches: list[str], kind: str, n: int, type_name: str
) -> None:
    """Do one ``kind`` of change to the jobs of ``batches``."""
    batch_id = batches[n % len(batches)]
    if kind == "delete":
        with contextlib.suppress(BatchNotFound):
            await store.delete_batch(batch_id)
        return
    try:
        jobs = await all_jobs(store, batch_id)
    except BatchNotFound:
        return
    active = [j.job_id for j in jobs if j.state is JobState.ACTIVE]
    picked = active[n % len(active)] if active else None
    any_job = jobs[n % len(jobs)].job_id if jobs else None
    if kind == "add":
        await store.add_jobs(batch_id, _jobs(type_name, n, max_attempts=2))
    elif kind == "claim":
        await _claim(store, batch_id, n + 1)
    elif kind == "expire":
        clock.advance(LEASE + 1)
        await store.recover_expired_leases()
    elif kind == "retry-failed":
        await store.retry_failed(batch_id)
    elif kind == "retry-job" and any_job is not None:
        await store.retry_job(any_job)
    elif kind == "cancel" and any_job is not None:
        await store.cancel_job(any_job)
    elif picked is not None:
        outcome = {
            "complete": Complete(job_id=picked),
            "retry": Fail(job_id=picked, error="x", retry_at=clock.now),
            "fail": Fail(job_id=picked, error="x"),
            "release": Release(job_id=picked, refund_attempt=True),
            "release-counted": Release(job_id=picked, refund_attempt=False),
            "follow-up": Complete(
                job_id=picked,
                follow_ups=(FollowUp(batch_id=batches[0], job=NewJob(type=type_name, payload=n)),),
            ),
        }[kind]
        await store.apply_and_claim(
            [outcome], owner="e", claim=Claim(batch_id=batch_id, limit=n + 1, lease_seconds=LEASE)
        )


async def test_an_older_sqlite_file_gets_its_jobs_counted(db_path: str, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        async with open_sqlite_store(db_path, clock=clock) as store:
            await store.create_batch("b", "echo")
            await store.add_jobs("b", _jobs("echo", 3) + _jobs("fail", 1))
            await _claim(store, "b", 1)
        # What a file made before the counters looks like.
        old = sqlite3.connect(db_path, isolation_level=None)
        for trigger in ("insert", "delete", "move"):
            old.execute(f"DROP TRIGGER type_counts_{trigger}")
        old.execute("DROP TABLE type_counts")
        old.close()
        async with open_sqlite_store(db_path, clock=clock) as store:
            await _check(store, echo=(2, 1, 0, 0), fail=(1, 0, 0, 0))
            await _claim(store, "b", 3)
            await _check(store, echo=(0, 3, 0, 0), fail=(0, 1, 0, 0))


async def test_redis_counts_the_jobs_stored_before_its_counters(
    redis_url: str, redis_port: int, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url, clock=clock) as store:
            await store.create_batch("b", "echo")
            await store.add_jobs("b", _jobs("echo", 3) + _jobs("fail", 1))
            await _claim(store, "b", 1)
            # What a store written before the counters looks like.
            for state in JobState:
                redis_command(redis_port, "DEL", f"batchyard:types:{state.value}")
            await _check(store, echo=(2, 1, 0, 0), fail=(1, 0, 0, 0))
            # Counted once: from then on the scripts keep the counters.
            redis_command(redis_port, "HSET", "batchyard:types:pending", "ghost", "5")
            assert (await store.counts_by_type())["ghost"].pending == 5
            await _claim(store, "b", 3)
            assert (await store.counts_by_type())["echo"] == Counts(active=3)
