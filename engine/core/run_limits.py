"""RunLimits: what bounds one batch run, as the engine's policy
(``engine.core.policy``) works it out from the settings, the batch and its
job types; the runner, its dispatcher and its child watch read it."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from engine.core.limits import RecentStarts
from engine.core.throttle import Throttle
from engine.core.type_gate import TypeGate
from engine.store.records import JobRecord

__all__ = ["RunLimits"]


@attrs.frozen(kw_only=True)
class RunLimits:
    """What bounds one run."""

    concurrency: int
    batch_size: int
    #: Jobs handed to the child beyond ``concurrency``, queued there for a
    #: worker, so it starts the next job the moment one finishes instead of
    #: waiting a round trip through the engine and the store: a claim's
    #: worth, at least the concurrency (0 while a type has a rate limit).
    prefetch: int
    lease_seconds: float
    backoff_seconds: float
    batch_retries: int
    #: The batch's rate limit with the run's recent starts, handed to each
    #: child (which keeps the limit); None: unlimited.
    starts: RecentStarts | None = None
    #: The slowest rate limit over the batch and its type (for its ETA).
    starts_per_second: float | None = None
    #: The gate of a job type with limits of its own, None for the others.
    type_gate: Callable[[str], TypeGate | None] = lambda _: None
    #: A job's time limit (its own, its type's, the engine's), None for none.
    timeout_of: Callable[[JobRecord], float | None] = lambda job: job.timeout_seconds
    #: How long a job asked to stop (cancel, timeout) may take before its
    #: child is replaced.
    grace_seconds: float = 10.0
    #: Jobs, and RSS bytes, after which a child is recycled; 0: never.
    max_jobs_per_child: int = 0
    max_child_rss_bytes: int = 0
    #: Seconds a child may say nothing (not even answer a ping) before it
    #: is taken for crashed; 0: never (``engine.core.silence``).
    silence_seconds: float = 0.0
    #: The run's hold on starts after a handler raised ``RateLimited``.
    throttle: Throttle = attrs.field(factory=Throttle)
