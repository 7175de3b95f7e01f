"""The job lifecycle as one table.

``TRANSITIONS[state][event]`` is the state a job moves to when ``event``
happens to it in ``state``; a pair missing from the table is illegal. Stores
derive their guards from this table (``sources(event)``), so a store never
moves a job along a pair the table lacks: the SQL and the table agree by
construction. Pure data: the store, the IPC messages and the API share this
one vocabulary of job states.
"""

from __future__ import annotations

import enum

__all__ = ["TRANSITIONS", "JobEvent", "JobState", "sources"]


class JobState(enum.Enum):
    """The four states of the contract."""

    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"


class JobEvent(enum.Enum):
    """What can happen to a job."""

    CLAIM = "claim"  # handed to a child under a lease
    COMPLETE = "complete"  # the handler returned
    FAIL = "fail"  # the handler raised (or its child crashed) with no attempts left
    RETRY_LATER = "retry-later"  # the handler raised; it runs again after a backoff
    RELEASE = "release"  # cut short (shutdown, cancel, crash) with attempts left
    EXPIRE = "expire"  # its lease ran out: the engine that held it died
    REQUEUE = "requeue"  # an operator asked to retry a failed job
    CANCEL = "cancel"  # an operator cancelled a job before it started


TRANSITIONS: dict[JobState, dict[JobEvent, JobState]] = {
    JobState.PENDING: {JobEvent.CLAIM: JobState.ACTIVE, JobEvent.CANCEL: JobState.FAILED},
    JobState.ACTIVE: {
        JobEvent.COMPLETE: JobState.COMPLETED,
        JobEvent.FAIL: JobState.FAILED,
        JobEvent.RETRY_LATER: JobState.PENDING,
        JobEvent.RELEASE: JobState.PENDING,
        JobEvent.EXPIRE: JobState.PENDING,
    },
    JobState.COMPLETED: {},
    JobState.FAILED: {JobEvent.REQUEUE: JobState.PENDING},
}


def sources(event: JobEvent) -> frozenset[JobState]:
    """Every state from which ``event`` is legal."""
    return frozenset(state for state, moves in TRANSITIONS.items() if event in moves)
