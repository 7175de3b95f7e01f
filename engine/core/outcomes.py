"""What a child's report of a job's end means to the store.

``outcome_of`` turns a ``JobCompleted``, ``JobFailed``, ``JobInterrupted``
or ``JobRateLimited`` into the store ``Outcome`` that records it: a
completion (its follow-ups checked by the engine's rules), a failure that
goes back to pending after an exponential backoff while the job has
attempts left, or a release that refunds the attempt (an interruption,
and a ``RateLimited`` hold, after which the job is due again).
``state_after`` is the store's rule for the state an outcome takes an
active job to, for the recorder's use when a write may have happened
without its reply. Pure functions: nothing here is awaited or owned.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.core.follow_ups import FollowUpRecorder
from engine.core.throttle import hold_seconds
from engine.store.records import Complete, Fail, JobRecord, Outcome, Release
from protocols import ipc
from protocols.lifecycle import JobState

__all__ = ["Ending", "outcome_of", "state_after"]

#: A report that ends a job's attempt.
Ending = ipc.JobCompleted | ipc.JobFailed | ipc.JobInterrupted | ipc.JobRateLimited


def outcome_of(
    message: Ending,
    job: JobRecord,
    *,
    clock: Callable[[], float],
    backoff_seconds: float,
    follow_ups: FollowUpRecorder,
) -> Outcome:
    """The outcome that records ``message`` for ``job``; ``clock`` is the
    store's wall clock, from which retries and holds are due."""
    if isinstance(message, ipc.JobCompleted):  # the usual report first
        checked = follow_ups.complete(message)
        if isinstance(checked, Complete):
            return checked
        message = ipc.JobFailed(job_id=job.job_id, error=checked)
    elif isinstance(message, ipc.JobInterrupted):
        return Release(job_id=job.job_id, refund_attempt=True)
    elif isinstance(message, ipc.JobRateLimited):  # not handed out before the hold ends
        due = clock() + hold_seconds(message.retry_after)
        return Release(job_id=job.job_id, refund_attempt=True, retry_at=due)
    retry_at = None
    if job.attempts < job.max_attempts:
        retry_at = clock() + backoff_seconds * 2 ** (job.attempts - 1)
    return Fail(
        job_id=job.job_id,
        error=message.error,
        traceback=message.traceback,
        retry_at=retry_at,
    )


def state_after(outcome: Outcome, job: JobRecord) -> JobState:
    """The state ``outcome`` takes an active ``job`` to (the store's rule)."""
    if isinstance(outcome, Complete):
        return JobState.COMPLETED
    if isinstance(outcome, Fail):
        return JobState.PENDING if outcome.retry_at is not None else JobState.FAILED
    if outcome.refund_attempt or job.attempts < job.max_attempts:
        return JobState.PENDING
    return JobState.FAILED
