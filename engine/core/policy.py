"""How the engine's settings apply to each job and each run: a job's
attempts and cost, a run's limits (concurrency, prefetch, the batch's rate
limit and the type gates every run of the engine shares).

Design notes
------------
The ``TypeGate`` of a job type with limits of its own (``[types.NAME]``) is
made once, when the engine opens, and handed to every run; it keeps its
limits in the store, so they hold across all batches of every engine on the
store. Each run gets its own record of recent starts (``RecentStarts``),
since ``RATE_LIMIT`` bounds one batch; its child keeps the limit.

A job whose cost exceeds a rate limit that applies to it (its batch's, its
type's own) could never start, so it is refused when it is submitted.

The batch's rate limit is kept where handlers start (``engine.core.limits``),
so jobs are prefetched under it as without it. A type's rate is taken in
the engine, on the way to the child: a job queued there would start when
a slot frees, later than its take; so while any type has a rate limit,
nothing is prefetched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from engine.config.settings import RateLimit, Settings
from engine.core.limits import RecentStarts
from engine.core.run_limits import RunLimits
from engine.core.throttle import Throttle
from engine.core.type_gate import TypeGate
from engine.core.values import JobRequest
from engine.errors import JobError, UnknownJobType
from engine.jobs.registry import JobRegistry
from engine.store import JobRecord, NewJob, Store

__all__ = ["EnginePolicy"]


def _recent_starts(rate: RateLimit) -> RecentStarts | None:
    return None if rate.unlimited else RecentStarts(rate)


class EnginePolicy:
    """The settings as they apply to jobs and runs.

    Args:
        settings: the engine's settings.
        registry: the job types jobs may name.
        store: where the type gates keep their limits.
    """

    def __init__(self, settings: Settings, registry: JobRegistry, store: Store) -> None:
        self._settings = settings
        self._registry = registry
        self._type_gates = {
            name: TypeGate(
                store,
                name,
                concurrency=overrides.concurrency,
                rate=overrides.rate_limit,
                lease_seconds=settings.lease_seconds,
            )
            for name, overrides in settings.type_overrides.items()
            if overrides.concurrency is not None
            or (overrides.rate_limit is not None and not overrides.rate_limit.unlimited)
        }
        # A type's time limit, looked up once: the settings never change,
        # and every job handed to a child asks for it.
        self._type_timeouts: dict[str, float | None] = {}

    def check_type(self, name: str) -> None:
        """Refuse a job type that is not registered.

        Raises:
            UnknownJobType: ``name`` is not registered.
        """
        if name not in self._registry:
            raise UnknownJobType(f"unknown job type {name!r}")

    def new_jobs(self, default_type: str, jobs: Sequence[JobRequest]) -> list[NewJob]:
        """The jobs as stored, each with its type's attempts.

        Raises:
            UnknownJobType: a job's type (its own or the batch's) is not
                registered.
            JobError: a job's cost is not a positive number, or exceeds a
                rate limit that applies to it (the message names it).
        """
        attempts: dict[str, int] = {}
        for type_name in {job.type or default_type for job in jobs}:
            self.check_type(type_name)
            attempts[type_name] = self._settings.for_type(type_name).max_attempts
        for index, job in enumerate(jobs):
            self._check_cost(index, job.cost, job.type or default_type)
        return [
            NewJob(
                type=job.type or default_type,
                payload=job.payload,
                key=job.key,
                priority=job.priority,
                delay_seconds=job.delay_seconds,
                max_attempts=attempts[job.type or default_type],
                cost=job.cost,
                timeout_seconds=job.timeout_seconds,
            )
            for job in jobs
        ]

    def _check_cost(self, index: int, cost: float, type_name: str) -> None:
        if not (math.isfinite(cost) and cost > 0):
            raise JobError(f"job {index}: cost must be a finite number > 0, got {cost!r}")
        batch_rate = self._settings.rate_limit
        if not batch_rate.unlimited and cost > batch_rate.count:
            raise JobError(
                f"job {index}: cost {cost:g} exceeds the batch rate limit"
                f" EMBEDDING_RATE_LIMIT={batch_rate.format()} ({batch_rate.count} per window)"
            )
        gate = self._type_gates.get(type_name)
        if gate is not None and gate.rate is not None and cost > gate.rate.count:
            raise JobError(
                f"job {index}: cost {cost:g} exceeds the rate limit of type {type_name!r}"
                f" ([types.{type_name}] rate_limit={gate.rate.format()},"
                f" {gate.rate.count} per window)"
            )

    def run_limits(self, batch_type: str | None = None) -> RunLimits:
        """The limits of a new run (with its own record of recent starts
        under the batch's rate limit) of a batch whose jobs are of
        ``batch_type`` by default."""
        settings = self._settings
        limits = [settings.rate_limit]
        if batch_type is not None:
            limits.append(settings.for_type(batch_type).rate_limit)
        rates = [rate.count / rate.per_seconds for rate in limits if not rate.unlimited]
        return RunLimits(
            starts_per_second=min(rates, default=None),
            concurrency=settings.concurrency,
            batch_size=settings.batch_size,
            lease_seconds=settings.lease_seconds,
            backoff_seconds=settings.job_backoff_seconds,
            batch_retries=settings.batch_retries,
            prefetch=self._prefetch(),
            starts=_recent_starts(settings.rate_limit),
            type_gate=self._type_gates.get,
            timeout_of=self._timeout_of,
            grace_seconds=settings.shutdown_grace_seconds,
            max_jobs_per_child=settings.max_jobs_per_child,
            max_child_rss_bytes=settings.max_child_memory_mb * 1024 * 1024,
            silence_seconds=settings.child_silence_seconds,
            throttle=Throttle(self._type_gates.get),
        )

    def _timeout_of(self, job: JobRecord) -> float | None:
        """The job's own time limit, else its type's, else the engine's."""
        if job.timeout_seconds is not None:
            return job.timeout_seconds
        try:
            return self._type_timeouts[job.type]
        except KeyError:
            timeout = self._settings.for_type(job.type).timeout_seconds
            self._type_timeouts[job.type] = timeout
            return timeout

    async def renew_type_slots(self) -> None:
        """Renew the leases of the type slots this engine holds.

        Cancellation: may have partially happened (some types renewed).

        Raises:
            StoreError: the store did not answer.
        """
        for gate in self._type_gates.values():
            await gate.renew()

    def forget_type_slots(self) -> None:
        """Renew none of the type slots this engine holds (no job of it
        runs here any more; ``TypeGate.forget_all``)."""
        for gate in self._type_gates.values():
            gate.forget_all()

    def _prefetch(self) -> int:
        """A claim's worth (``batch_size``), and at least the concurrency: a
        whole burst of results and the claim that replaces it can then be
        in the child at once, so the store steps come in bursts as large as
        the claims."""
        rated = any(gate.rate is not None for gate in self._type_gates.values())
        settings = self._settings
        return 0 if rated else max(settings.concurrency, settings.batch_size)
