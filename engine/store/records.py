"""The values the store takes and gives: jobs to add, batches and jobs as
stored, outcomes of claimed jobs, engines and runs of the cluster.

Frozen attrs values, one concept each; the ``Store`` protocol
(``engine.store.base``) says what each method does with them. Times are
wall-clock seconds (the store's ``clock``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from protocols.lifecycle import JobState

__all__ = [
    "AddResult",
    "BatchRecord",
    "Claim",
    "Complete",
    "Counts",
    "EngineRecord",
    "Fail",
    "FollowUp",
    "JobPage",
    "JobRecord",
    "NewJob",
    "Outcome",
    "Release",
    "RunRecord",
    "Step",
    "starts_by_itself",
]


@attrs.frozen(kw_only=True)
class NewJob:
    """A job to add. ``max_attempts`` is fixed when it is added; rate limits
    count its ``cost``."""

    type: str
    payload: Any = None
    key: str | None = None
    priority: int = 0
    delay_seconds: float = 0.0
    max_attempts: int = 1
    cost: float = 1.0
    #: The job's own limit on its run time, None to follow its type's.
    timeout_seconds: float | None = None


@attrs.frozen(kw_only=True)
class AddResult:
    """What ``add_jobs`` did: jobs added, and jobs refused for a known key."""

    enqueued: int
    duplicates: int
    job_ids: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Counts:
    """Jobs of one batch per state."""

    pending: int = 0
    active: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.active + self.completed + self.failed


@attrs.frozen(kw_only=True)
class BatchRecord:
    """A batch as stored: ``type`` is the default job type of its jobs;
    ``run_owner`` is the engine that runs it (holds its run record under a
    lease that has not expired), or None."""

    batch_id: str
    type: str
    created_at: float
    options: Mapping[str, Any] = attrs.field(factory=dict)
    counts: Counts = attrs.field(factory=Counts)
    run_owner: str | None = None


def starts_by_itself(options: Mapping[str, Any]) -> bool:
    """Whether a batch with these options starts without being asked to: its
    ``autoStart`` is true or its ``after`` lists batches. Fixed when the batch
    is created (options never change)."""
    after = options.get("after")
    return options.get("autoStart") is True or (isinstance(after, list) and bool(after))


@attrs.frozen(kw_only=True)
class EngineRecord:
    """One engine of the cluster as registered by its ``heartbeat``.

    ``boot_id`` names the host's boot, so that ``host``, ``boot_id`` and a
    ``pid`` that no longer lives show an engine gone for good. ``last_seen``
    and ``expires_at`` are wall-clock seconds set by the store (the caller's
    values are replaced); the engine is live while ``expires_at > now``.
    """

    engine_id: str
    host: str
    pid: int
    boot_id: str
    max_batches: int
    running_batches: tuple[str, ...] = ()
    last_seen: float = 0.0
    expires_at: float = 0.0


@attrs.frozen(kw_only=True)
class RunRecord:
    """A remembered run: ``owner`` holds it until ``expires_at`` (unless it
    renews its leases). Free to take over when ``owner`` is None (handed
    over; ``expires_at`` is then when it was) or the lease has expired."""

    batch_id: str
    owner: str | None
    expires_at: float


@attrs.frozen(kw_only=True)
class JobRecord:
    """A job as stored."""

    job_id: str
    batch_id: str
    type: str
    state: JobState
    payload: Any
    attempts: int
    max_attempts: int
    key: str | None
    priority: int
    result: Any
    error: str | None
    traceback: str | None
    created_at: float
    available_at: float
    cost: float = 1.0
    #: When its latest claim handed it out, and when it completed or failed
    #: for good (None while it has not); wall-clock seconds.
    started_at: float | None = None
    finished_at: float | None = None
    #: The percentage its handler last reported, None before any.
    progress: float | None = None
    timeout_seconds: float | None = None


@attrs.frozen(kw_only=True)
class JobPage:
    """One page of ``list_jobs``; ``next_cursor`` is None on the last page."""

    jobs: tuple[JobRecord, ...]
    next_cursor: str | None


@attrs.frozen(kw_only=True)
class FollowUp:
    """A job a handler added (``ctx.enqueue``), to ``batch_id``."""

    batch_id: str
    job: NewJob


@attrs.frozen(kw_only=True)
class Complete:
    """The handler returned ``result``: active → completed. Its
    ``follow_ups`` are added in the same step, only if the job does complete
    there (as ``add_jobs`` adds them: a known ``key`` is skipped); one for a
    batch that no longer exists is dropped."""

    job_id: str
    result: Any = None
    follow_ups: tuple[FollowUp, ...] = ()


@attrs.frozen(kw_only=True)
class Fail:
    """The handler raised: active → pending again at ``retry_at`` (wall clock),
    or → failed when ``retry_at`` is None."""

    job_id: str
    error: str
    traceback: str | None = None
    retry_at: float | None = None


@attrs.frozen(kw_only=True)
class Release:
    """The job was cut short and did not finish: active → pending.

    ``refund_attempt`` gives back the attempt its claim counted (shutdown,
    cancel). Without it (a crashed child) the attempt stays used, and a job
    that has used all its attempts becomes failed with ``error``. With
    ``retry_at`` (wall clock) the job is not handed out again before then
    (its handler said its API is rate limited).
    """

    job_id: str
    refund_attempt: bool
    error: str = "interrupted"
    retry_at: float | None = None


Outcome = Complete | Fail | Release


@attrs.frozen(kw_only=True)
class Claim:
    """A claim made in the same store step as a burst's outcomes
    (``Store.apply_and_claim``): up to ``limit`` due jobs of ``batch_id``
    under a lease of ``lease_seconds``."""

    batch_id: str
    limit: int
    lease_seconds: float


@attrs.frozen(kw_only=True)
class Step:
    """What ``Store.apply_and_claim`` did: the state each recorded job is in
    afterwards (as ``apply`` returns it) and the jobs claimed (as
    ``claim_jobs`` returns them)."""

    states: dict[str, JobState]
    claimed: list[JobRecord]
