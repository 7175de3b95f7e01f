"""How the engine's settings apply to each job and each run: a job's
attempts, a run's limits (concurrency, prefetch, the batch's rate limit and
the type gates every run of the engine shares).

Design notes
------------
The ``TypeGate`` of a job type with limits of its own (``[types.NAME]``) is
made once, when the engine opens, and handed to every run: its limits hold
across all the engine's batches. Each run gets a rate limiter of its own,
since ``RATE_LIMIT`` bounds one batch.

Jobs queued in a child start whenever a slot frees there, not when the
engine took their start from a rate limiter; so under any rate limit
nothing is prefetched, and the limit holds at the start.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from engine.config.settings import RateLimit, Settings
from engine.core.limits import RateLimiter, TypeGate
from engine.core.runner import RunLimits
from engine.core.values import JobRequest
from engine.errors import UnknownJobType
from engine.jobs.registry import JobRegistry
from engine.store import NewJob

__all__ = ["EnginePolicy"]

_NO_GATE = TypeGate()


def _limiter(rate: RateLimit) -> RateLimiter | None:
    return None if rate.unlimited else RateLimiter(rate.count, rate.per_seconds)


class EnginePolicy:
    """The settings as they apply to jobs and runs.

    Args:
        settings: the engine's settings.
        registry: the job types jobs may name.
    """

    def __init__(self, settings: Settings, registry: JobRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._type_gates = {
            name: TypeGate(
                rate=None if overrides.rate_limit is None else _limiter(overrides.rate_limit),
                slots=None
                if overrides.concurrency is None
                else trio.CapacityLimiter(overrides.concurrency),
            )
            for name, overrides in settings.type_overrides.items()
        }

    def new_jobs(self, default_type: str, jobs: Sequence[JobRequest]) -> list[NewJob]:
        """The jobs as stored, each with its type's attempts.

        Raises:
            UnknownJobType: a job's type (its own or the batch's) is not
                registered.
        """
        attempts: dict[str, int] = {}
        for type_name in {job.type or default_type for job in jobs}:
            if type_name not in self._registry:
                raise UnknownJobType(f"unknown job type {type_name!r}")
            attempts[type_name] = self._settings.for_type(type_name).max_attempts
        return [
            NewJob(
                type=job.type or default_type,
                payload=job.payload,
                key=job.key,
                priority=job.priority,
                delay_seconds=job.delay_seconds,
                max_attempts=attempts[job.type or default_type],
            )
            for job in jobs
        ]

    def run_limits(self) -> RunLimits:
        """The limits of a new run (with a rate limiter of its own)."""
        settings = self._settings
        return RunLimits(
            concurrency=settings.concurrency,
            batch_size=settings.batch_size,
            lease_seconds=settings.lease_seconds,
            backoff_seconds=settings.job_backoff_seconds,
            batch_retries=settings.batch_retries,
            prefetch=self._prefetch(),
            rate=_limiter(settings.rate_limit),
            type_gate=self._type_gate,
        )

    def _type_gate(self, type_name: str) -> TypeGate:
        return self._type_gates.get(type_name, _NO_GATE)

    def _prefetch(self) -> int:
        rated = not self._settings.rate_limit.unlimited or any(
            gate.rate is not None for gate in self._type_gates.values()
        )
        return 0 if rated else self._settings.concurrency
