"""Announcing a recorded burst: each job's news, and its terminal event, counted once.

Design notes
------------
``publish_burst`` publishes a burst of child messages once the
``Recorder`` wrote their outcomes, in the order the child sent them: a
held job's start (or progress) as its ``active`` update, each ending whose
outcome the store took with ``announce_outcome`` as its job leaves
``HeldJobs``, a ``RateLimited`` job's ``job:rate-limited`` (made when the
hold was put on; when the store did not take the burst's outcomes, the
recorder's ``release`` publishes it once it writes them). It runs for
every message of every burst, so it dispatches on the exact class
(messages are never subclassed).

Once the store took a job's outcome, the state it left the job in says
what subscribers hear: a job back to pending after a failure gets
``job:retrying``; a completed or failed one gets its terminal
``job:update`` (with its duration when the child reported it active) and
is counted in the run's ``Tally``. Any other state is news to no one.
``announce_outcome`` says so once per job, as the job leaves ``HeldJobs``
(in ``publish_burst``, or in the recorder's ``release``).
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from engine.core.held import HeldJob, HeldJobs
from engine.core.job_log import job_ended, job_retrying, jobs_logged
from engine.core.tally import Tally
from engine.store.records import Fail, Outcome, Release
from protocols import events, ipc
from protocols.lifecycle import JobState

__all__ = ["announce_outcome", "publish_burst"]

#: The reports that end a job's attempt with its terminal event
#: (``JobRateLimited`` ends it with ``job:rate-limited``).
_ENDINGS = (ipc.JobCompleted, ipc.JobFailed, ipc.JobInterrupted)


def publish_burst(
    messages: list[ipc.ChildMessage],
    outcomes: dict[str, Outcome],
    states: dict[str, JobState],
    held: HeldJobs,
    *,
    batch_id: str,
    tally: Tally,
    publish: Callable[[events.EventData], object],
    rate_limited: dict[str, events.RateLimitedJob],
) -> None:
    """Publish a recorded burst's events in the order of its messages.

    Args:
        outcomes: the burst's outcomes the store took, by job id (the
            others are held for the recorder's ``release``).
        states: the state each of them left its job in.
        held: the run's jobs; each job announced leaves it.
        tally: counts the jobs that completed or failed.
        rate_limited: the ``job:rate-limited`` event of each job whose
            ``RateLimited`` put a hold on, taken once published.
    """
    logged = jobs_logged()
    for message in messages:
        if type(message) is ipc.JobStarted:
            if message.job_id in held:
                publish(
                    events.JobUpdate(
                        batch_id=batch_id,
                        job_id=message.job_id,
                        status=JobState.ACTIVE,
                        progress=0.0,
                        started_at=message.started_at,
                    )
                )
        elif isinstance(message, _ENDINGS):
            job_id = message.job_id
            outcome = outcomes.get(job_id)
            if outcome is not None and job_id in held:
                announce_outcome(
                    outcome,
                    states.get(job_id),
                    held.pop(job_id),
                    batch_id=batch_id,
                    tally=tally,
                    publish=publish,
                    logged=logged,
                )
        else:
            _publish_other(message, outcomes, held, batch_id, tally, publish, rate_limited)


def _publish_other(
    message: ipc.ChildMessage,
    outcomes: dict[str, Outcome],
    held: HeldJobs,
    batch_id: str,
    tally: Tally,
    publish: Callable[[events.EventData], object],
    rate_limited: dict[str, events.RateLimitedJob],
) -> None:
    """``publish_burst`` for a message that is neither a start nor an ending."""
    if type(message) is ipc.JobProgress:
        if message.job_id in held:
            publish(
                events.JobUpdate(
                    batch_id=batch_id,
                    job_id=message.job_id,
                    status=JobState.ACTIVE,
                    progress=message.progress,
                )
            )
    elif type(message) is ipc.Progress:
        tally.report()  # published once, at the end of the burst
    elif type(message) is ipc.JobRateLimited:
        job_id = message.job_id
        if job_id not in held or job_id not in outcomes:
            return  # else held for the recorder's ``release``, which publishes it
        event = rate_limited.pop(job_id, None)
        if event is not None:
            held.pop(job_id)
            publish(event)
    elif type(message) is ipc.BatchStarted:
        publish(events.ProcessingStarted(batch_id=batch_id))
    # Ready, Done, ChildFailed and Pong say nothing subscribers need.


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
