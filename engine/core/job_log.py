"""Job lifecycle lines: a job became active, completed (with how long its
handler ran), failed (with its error) or failed and will be retried, at
DEBUG on the logger ``batchyard.jobs``.

Each line names its batch and job (``[batch B] job J (TYPE) ...``) and
carries them as ``batchId`` / ``jobId`` for the JSON format
(``engine.core.logs``). Each costs one level check when DEBUG is off; the
recorder, which has a burst of jobs at hand, asks ``jobs_logged`` once per
burst and makes no call at all while it is off.
"""

from __future__ import annotations

import logging

from engine.core.logs import log_fields
from engine.store.records import JobRecord

__all__ = ["job_active", "job_ended", "job_retrying", "jobs_logged"]

log = logging.getLogger("batchyard.jobs")


def jobs_logged() -> bool:
    """Whether job lines are written now (DEBUG on ``batchyard.jobs``)."""
    return log.isEnabledFor(logging.DEBUG)


def job_active(batch_id: str, job: JobRecord) -> None:
    """The job's handler started (attempt ``job.attempts``)."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "[batch %s] job %s (%s) active, attempt %d",
            batch_id,
            job.job_id,
            job.type,
            job.attempts,
            extra=log_fields(batch_id, job.job_id),
        )


def job_ended(
    batch_id: str, job: JobRecord, *, error: str | None, duration_ms: float | None
) -> None:
    """The job completed (``error`` None) or failed for good."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    took = "" if duration_ms is None else f" in {duration_ms:.1f} ms"
    outcome = "completed" if error is None else "failed"
    tail = "" if error is None else f" after {job.attempts} attempt(s): {error}"
    log.debug(
        "[batch %s] job %s (%s) %s%s%s",
        batch_id,
        job.job_id,
        job.type,
        outcome,
        took,
        tail,
        extra=log_fields(batch_id, job.job_id),
    )


def job_retrying(batch_id: str, job: JobRecord, *, error: str) -> None:
    """The job failed with attempts left: it goes back to pending."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "[batch %s] job %s (%s) failed, attempt %d of %d, will be retried: %s",
            batch_id,
            job.job_id,
            job.type,
            job.attempts,
            job.max_attempts,
            error,
            extra=log_fields(batch_id, job.job_id),
        )
