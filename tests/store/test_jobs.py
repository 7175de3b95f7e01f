"""The ``Store`` contract for one job by id (look-up, cancel, retry,
progress) and the job's times, on every backend (``store`` is parametrised
in ``conftest.py``)."""

from __future__ import annotations

import pytest
import trio

from engine.errors import JobNotFound
from engine.store import Complete, Fail, NewJob, Store
from protocols.lifecycle import JobState
from tests.store.helpers import DEADLINE, LEASE, FakeClock, jobs_of


async def _one_job(store: Store, **fields: object) -> str:
    await store.create_batch("b", "echo")
    added = await store.add_jobs("b", [NewJob(type="echo", payload={"n": 1}, **fields)])  # type: ignore[arg-type]
    return added.job_ids[0]


async def test_get_job_with_its_times(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        job_id = await _one_job(store, cost=2.5, timeout_seconds=7.0)
        job = await store.get_job(job_id)
        assert (job.batch_id, job.state, job.payload, job.cost) == (
            "b",
            JobState.PENDING,
            {"n": 1},
            2.5,
        )
        assert (job.created_at, job.started_at, job.finished_at, job.progress) == (
            clock.now,
            None,
            None,
            None,
        )
        assert job.timeout_seconds == 7.0
        created = clock.now
        clock.advance(3)
        (claimed,) = await store.claim_jobs("b", 1, owner="e1", lease_seconds=LEASE)
        assert claimed.started_at == created + 3
        clock.advance(2)
        await store.record_progress({job_id: 42.5}, owner="e1")
        await store.record_progress({job_id: 99.0}, owner="someone-else")
        assert (await store.get_job(job_id)).progress == 42.5
        await store.apply([Complete(job_id=job_id, result=[1])], owner="e1")
        done = await store.get_job(job_id)
        assert (done.state, done.result) == (JobState.COMPLETED, [1])
        assert (done.started_at, done.finished_at, done.progress) == (
            created + 3,
            created + 5,
            42.5,
        )
        with pytest.raises(JobNotFound):
            await store.get_job("nope")


async def test_cancel_pending_job_fails_it(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        job_id = await _one_job(store)
        clock.advance(1)
        assert await store.cancel_job(job_id) is JobState.PENDING
        job = await store.get_job(job_id)
        assert (job.state, job.error, job.finished_at) == (JobState.FAILED, "cancelled", clock.now)
        assert (await store.counts("b")).failed == 1
        assert await store.next_due_at("b") is None
        assert await store.claim_jobs("b", 5, owner="e1", lease_seconds=LEASE) == []
        # Failed already: left alone, and the caller learns so.
        assert await store.cancel_job(job_id) is JobState.FAILED
        with pytest.raises(JobNotFound):
            await store.cancel_job("nope")


async def test_cancel_leaves_active_and_completed_jobs(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        a, b = (await store.add_jobs("b", jobs_of(2))).job_ids
        await store.claim_jobs("b", 2, owner="e1", lease_seconds=LEASE)
        await store.apply([Complete(job_id=b)], owner="e1")
        assert await store.cancel_job(a) is JobState.ACTIVE
        assert await store.cancel_job(b) is JobState.COMPLETED
        assert (await store.get_job(a)).state is JobState.ACTIVE
        assert (await store.get_job(b)).state is JobState.COMPLETED


async def test_retry_job_only_when_failed(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        a, b = (await store.add_jobs("b", jobs_of(2, max_attempts=1))).job_ids
        assert await store.retry_job(a) is False  # pending
        await store.claim_jobs("b", 2, owner="e1", lease_seconds=LEASE)
        await store.apply([Fail(job_id=a, error="boom"), Complete(job_id=b)], owner="e1")
        assert await store.retry_job(b) is False  # completed
        clock.advance(4)
        assert await store.retry_job(a) is True
        job = await store.get_job(a)
        assert (job.state, job.attempts, job.error, job.started_at, job.finished_at) == (
            JobState.PENDING,
            0,
            None,
            None,
            None,
        )
        assert await store.next_due_at("b") == clock.now
        (again,) = await store.claim_jobs("b", 1, owner="e1", lease_seconds=LEASE)
        assert (again.job_id, again.attempts) == (a, 1)
        with pytest.raises(JobNotFound):
            await store.retry_job("nope")


async def test_an_active_jobs_cancel_is_asked_of_its_engine_once(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        a, b, c = (await store.add_jobs("b", jobs_of(3))).job_ids
        await store.claim_jobs("b", 2, owner="e1", lease_seconds=LEASE)
        await store.claim_jobs("b", 1, owner="e2", lease_seconds=LEASE)
        assert await store.take_cancel_requests("e1") == []
        assert await store.cancel_job(a) is JobState.ACTIVE
        assert await store.cancel_job(c) is JobState.ACTIVE
        assert await store.take_cancel_requests("e1") == [a]
        assert await store.take_cancel_requests("e1") == []  # handed out once
        assert await store.take_cancel_requests("e2") == [c]
        # An ask for a job that ended meanwhile is not handed out.
        assert await store.cancel_job(b) is JobState.ACTIVE
        await store.apply([Complete(job_id=b)], owner="e1")
        assert await store.take_cancel_requests("e1") == []
        assert (await store.get_job(a)).state is JobState.ACTIVE


async def test_an_ask_not_taken_does_not_cancel_the_jobs_next_attempt(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        (a,) = (await store.add_jobs("b", jobs_of(1, max_attempts=1))).job_ids
        await store.claim_jobs("b", 1, owner="e1", lease_seconds=LEASE)
        assert await store.cancel_job(a) is JobState.ACTIVE
        await store.apply([Fail(job_id=a, error="boom")], owner="e1")  # ended first
        assert await store.retry_job(a) is True
        await store.claim_jobs("b", 1, owner="e1", lease_seconds=LEASE)
        assert await store.take_cancel_requests("e1") == []
