"""The one error root of the engine, with subclasses grouped by concern.

Where an error means what a builtin means, it subclasses that builtin too, so
``except LookupError`` keeps working for callers who know nothing of
batchyard.
"""

from __future__ import annotations

import math

__all__ = [
    "BatchExists",
    "BatchNotFound",
    "BatchNotRunning",
    "BatchRunning",
    "ChildCrashed",
    "ChildError",
    "ConfigError",
    "Conflict",
    "EngineError",
    "JobError",
    "JobNotFound",
    "JobStateConflict",
    "NotFound",
    "RateLimited",
    "ShuttingDown",
    "StoreError",
    "StoreUnavailable",
    "UnknownJobType",
]


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""


class ConfigError(EngineError, ValueError):
    """A setting has an invalid value; the message names the setting and the value."""


class NotFound(EngineError, LookupError):
    """Something named by the caller does not exist."""


class BatchNotFound(NotFound):
    """No batch has this id."""


class JobNotFound(NotFound):
    """No job has this id."""


class Conflict(EngineError):
    """The request clashes with the current state of a batch."""


class BatchExists(Conflict):
    """A batch with this id already exists."""


class BatchRunning(Conflict):
    """The batch is running, and the request needs it idle."""


class BatchNotRunning(Conflict):
    """The batch is idle, and the request needs it running."""


class JobStateConflict(Conflict):
    """The job is not in a state the request can act on (say, cancelling a
    completed job, or retrying one that has not failed)."""


class ShuttingDown(EngineError):
    """The engine is draining and accepts no new work."""


class JobError(EngineError):
    """A problem with a job type or a job's definition."""


class UnknownJobType(JobError, ValueError):
    """No handler is registered under this job type."""


class RateLimited(JobError):
    """Raised by a handler whose API said "too many requests" (HTTP 429):
    the job goes back to pending without using an attempt, and its batch
    (and its type, when the type has a rate limit of its own, across the
    cluster) starts nothing more for ``retry_after`` seconds.

    Raises:
        ValueError: ``retry_after`` is not a finite number of seconds >= 0.
    """

    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        seconds = float(retry_after)
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"retry_after must be finite seconds >= 0, got {retry_after!r}")
        super().__init__(f"{message} (retry after {seconds:g} s)")
        self.retry_after = seconds


class StoreError(EngineError):
    """The store failed to do what was asked."""


class StoreUnavailable(StoreError):
    """The store cannot be reached (a dropped connection, a full disk)."""


class ChildError(EngineError):
    """A batch's child process misbehaved."""


class ChildCrashed(ChildError):
    """The child exited non-zero, broke its pipe, or spoke malformed IPC."""
