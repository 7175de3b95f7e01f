"""Announcing a recorded outcome: a job's terminal event, counted once.

Design notes
------------
Once the store took a job's outcome, the state it left the job in says
what subscribers hear: a job back to pending after a failure gets
``job:retrying``; a completed or failed one gets its terminal
``job:update`` (with its duration when the child reported it active) and
is counted in the run's ``Tally``. Any other state is news to no one.
The ``Recorder`` calls this once per job, as the job leaves ``HeldJobs``.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from engine.core.held import HeldJob
from engine.core.job_log import job_ended, job_retrying
from engine.core.tally import Tally
from engine.store.records import Fail, Outcome, Release
from protocols import events
from protocols.lifecycle import JobState

__all__ = ["announce_outcome"]


def announce_outcome(
    outcome: Outcome,
    state: JobState | None,
    held: HeldJob,
    *,
    batch_id: str,
    tally: Tally,
    publish: Callable[[events.EventData], object],
    logged: bool = True,
) -> None:
    """Log and publish what the store made of ``outcome`` (``state``; None
    when it did not record it) for the held job, counting a completion or
    a failure in ``tally``. Publishes nothing for any other state. With
    ``logged`` False (``engine.core.job_log.jobs_logged`` said so for the
    burst) no job line is even asked for."""
    job = held.record
    if state is JobState.COMPLETED:
        tally.completed += 1
        error = None
    elif state is JobState.FAILED:
        tally.failed += 1
        error = outcome.error if isinstance(outcome, Fail | Release) else None
    else:
        if state is JobState.PENDING and isinstance(outcome, Fail):
            if logged:
                job_retrying(batch_id, job, error=outcome.error)
            publish(
                events.JobRetrying(
                    batch_id=batch_id,
                    job_id=job.job_id,
                    error=outcome.error,
                    retry_at=outcome.retry_at,
                    type=job.type,
                    attempt=job.attempts,
                )
            )
        return
    duration_ms = None
    if held.active_since is not None:
        ended = held.finished_at
        if ended is None:
            ended = trio.current_time()
        duration_ms = round((ended - held.active_since) * 1000, 3)
    if logged:
        job_ended(batch_id, job, error=error, duration_ms=duration_ms)
    publish(
        events.JobUpdate(
            batch_id=batch_id,
            job_id=job.job_id,
            status=state,
            error=error,
            type=job.type,
            attempt=job.attempts,
            duration_ms=duration_ms,
        )
    )
