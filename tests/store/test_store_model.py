"""The ``Store`` contract's state machine, run against every backend: a
Hypothesis model of batches and jobs checked after each random step.

The ``store`` fixture (``conftest.py``) is parametrised over the backends, so
the machine runs once per backend. Stores read wall-clock time through an
injected ``clock``, a ``FakeClock`` driven by hand, so nothing here sleeps;
the deadlines are real ``trio.fail_after`` ones (store calls run in worker
threads or on sockets, which ``MockClock``'s autojump would mistake for
idleness).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from engine.store import Complete, Fail, NewJob, Release, Store
from protocols.lifecycle import JobState
from tests.store.helpers import LEASE, FakeClock, all_jobs

# -- the state machine ------------------------------------------------------------------


@attrs.define
class ModelJob:
    seq: int
    state: JobState
    priority: int
    max_attempts: int
    available_at: float
    key: str | None
    attempts: int = 0
    error: str | None = None
    result: Any = None


_batch_numbers = itertools.count()
NEW_JOB = st.builds(
    NewJob,
    type=st.just("echo"),
    key=st.sampled_from([None, None, "k1", "k2", "k3"]),
    priority=st.one_of(st.integers(-1, 1), st.sampled_from([-(2**63), 2**63 - 1])),
    delay_seconds=st.sampled_from([0.0, 0.0, 5.0]),
    max_attempts=st.integers(1, 3),
)
#: What can become of a claimed job: done, failed for good, failed with a
#: retry later or at once, cut short with its attempt refunded (shutdown) or
#: not (a crashed child).
OUTCOME_KINDS = st.sampled_from(["complete", "fail", "retry", "retry-now", "release", "crash"])


class StoreMachine(RuleBasedStateMachine):
    """Drives a store from a worker thread and checks it against a plain model.

    Each example works on a fresh batch, deleted at teardown, so one open
    store serves every example.
    """

    def __init__(self, store: Store, clock: FakeClock) -> None:
        super().__init__()
        self.store, self.clock = store, clock
        self.batch_id = f"m{next(_batch_numbers)}"
        self.model: dict[str, ModelJob] = {}
        self.call(store.create_batch, self.batch_id, "echo")

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        return trio.from_thread.run(functools.partial(fn, *args, **kwargs))

    def ids_in(self, state: JobState) -> list[str]:
        return [i for i, job in self.model.items() if job.state is state]

    def has_active(self) -> bool:
        return bool(self.ids_in(JobState.ACTIVE))

    @initialize(jobs=st.lists(NEW_JOB, min_size=2, max_size=8))
    def seed(self, jobs: list[NewJob]) -> None:
        self.add(jobs)

    @rule(jobs=st.lists(NEW_JOB, min_size=1, max_size=4))
    def add(self, jobs: list[NewJob]) -> None:
        result = self.call(self.store.add_jobs, self.batch_id, jobs)
        keys = {job.key for job in self.model.values()}
        fresh = []
        for job in jobs:
            if job.key is None or job.key not in keys:
                keys.add(job.key)
                fresh.append(job)
        assert (result.enqueued, result.duplicates) == (len(fresh), len(jobs) - len(fresh))
        for job_id, job in zip(result.job_ids, fresh, strict=True):
            self.model[job_id] = ModelJob(
                seq=len(self.model),
                state=JobState.PENDING,
                priority=job.priority,
                max_attempts=job.max_attempts,
                available_at=self.clock.now + job.delay_seconds,
                key=job.key,
            )

    @rule(limit=st.integers(1, 5))
    def claim(self, limit: int) -> None:
        due = [
            (-job.priority, job.seq, job_id)
            for job_id, job in self.model.items()
            if job.state is JobState.PENDING and job.available_at <= self.clock.now
        ]
        expected = [job_id for *_, job_id in sorted(due)[:limit]]
        claimed = self.call(
            self.store.claim_jobs, self.batch_id, limit, owner="m", lease_seconds=LEASE
        )
        assert [job.job_id for job in claimed] == expected
        for job in claimed:
            self.model[job.job_id].state = JobState.ACTIVE
            self.model[job.job_id].attempts += 1
            assert job.attempts == self.model[job.job_id].attempts

    @precondition(has_active)
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        """One grouped ``apply``: mostly active jobs, some stale, some twice;
        sometimes by an owner that holds none of their leases."""
        active, every = self.ids_in(JobState.ACTIVE), list(self.model)
        pick = st.one_of(st.sampled_from(active), st.sampled_from(every))
        picks = data.draw(st.lists(st.tuples(pick, OUTCOME_KINDS), min_size=1, max_size=5))
        owner = data.draw(st.sampled_from(["m", "not-m"]))
        outcomes, expected = [], {}
        for job_id, kind in picks:
            outcomes.append(self.outcome(job_id, kind))
            # Only the owner's outcomes count, and the first for a job only.
            if owner == "m" and self.model[job_id].state is JobState.ACTIVE:
                expected[job_id] = self.move(self.model[job_id], job_id, kind)
        assert self.call(self.store.apply, outcomes, owner=owner) == expected

    def outcome(self, job_id: str, kind: str) -> Complete | Fail | Release:
        return {
            "complete": lambda: Complete(job_id=job_id, result=job_id),
            "fail": lambda: Fail(job_id=job_id, error="boom"),
            "retry": lambda: Fail(job_id=job_id, error="boom", retry_at=self.clock.now + 3),
            "retry-now": lambda: Fail(job_id=job_id, error="boom", retry_at=self.clock.now),
            "release": lambda: Release(job_id=job_id, refund_attempt=True),
            "crash": lambda: Release(job_id=job_id, refund_attempt=False),
        }[kind]()

    def move(self, job: ModelJob, job_id: str, kind: str) -> JobState:
        if kind == "complete":
            job.state, job.result, job.error = JobState.COMPLETED, job_id, None
        elif kind == "fail":
            job.state, job.error = JobState.FAILED, "boom"
        elif kind in ("retry", "retry-now"):
            job.state, job.error = JobState.PENDING, "boom"
            job.available_at = self.clock.now + (3 if kind == "retry" else 0)
        elif kind == "release":
            job.state, job.attempts = JobState.PENDING, job.attempts - 1
        else:
            used_up = job.attempts >= job.max_attempts
            job.state = JobState.FAILED if used_up else JobState.PENDING
            job.error = "interrupted"
        return job.state

    @rule(seconds=st.sampled_from([1.0, 4.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(has_active)
    @rule()
    def engine_died(self) -> None:
        self.clock.advance(LEASE)  # every lease held now has run out
        recovered = self.call(self.store.recover_expired_leases)
        assert recovered == len(self.ids_in(JobState.ACTIVE))
        for job_id in self.ids_in(JobState.ACTIVE):
            self.model[job_id].state = JobState.PENDING
            self.model[job_id].attempts -= 1

    @precondition(lambda self: bool(self.ids_in(JobState.FAILED)))
    @rule()
    def retry_failed(self) -> None:
        failed = self.ids_in(JobState.FAILED)
        assert self.call(self.store.retry_failed, self.batch_id) == len(failed)
        for job_id in failed:
            job = self.model[job_id]
            job.state, job.attempts, job.error = JobState.PENDING, 0, None
            job.available_at = self.clock.now

    @invariant()
    def matches_model(self) -> None:
        counts = self.call(self.store.counts, self.batch_id)
        assert {s: getattr(counts, s.value) for s in JobState} == {
            s: len(self.ids_in(s)) for s in JobState
        }
        assert self.call(self.store.queue_length) == counts.pending
        startable = self.call(self.store.startable_batches, 9, any_batch=True)
        due = [j for j in self.model.values() if j.available_at <= self.clock.now]
        has_due = any(job.state is JobState.PENDING for job in due)
        assert [b.batch_id for b in startable] == ([self.batch_id] if has_due else [])
        listed = self.call(all_jobs, self.store, self.batch_id, limit=3)
        assert [job.job_id for job in listed] == list(self.model)
        for job in listed:
            model = self.model[job.job_id]
            seen = (job.state, job.attempts, job.key, job.error, job.result, job.available_at)
            assert seen == (
                model.state,
                model.attempts,
                model.key,
                model.error,
                model.result,
                model.available_at,
            )

    def teardown(self) -> None:
        self.call(self.store.delete_batch, self.batch_id)


async def test_state_machine(store: Store, clock: FakeClock) -> None:
    config = settings(
        max_examples=60,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    # Generous: a passing run takes seconds, but a failing one shrinks for long.
    with trio.fail_after(600):
        await trio.to_thread.run_sync(
            functools.partial(
                run_state_machine_as_test,
                lambda: StoreMachine(store, clock),
                settings=config,
            )
        )
