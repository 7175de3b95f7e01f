"""The SQLite store's follow-up jobs: added in the transaction of ``apply``
that completes the job which enqueued them, so they exist if and only if it
completed.

Runs inside that transaction (in the store's worker thread, or in the
Trio thread for a hot step with few follow-ups: ``engine.store.sqlite``), after
``_sqlite_outcomes.apply`` moved the jobs (its ``states`` say which completed).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping, Sequence

from engine.errors import BatchNotFound
from engine.store._sqlite_ops import add_jobs
from engine.store.records import Complete, NewJob, Outcome
from protocols.lifecycle import JobState

__all__ = ["add_follow_ups"]


def add_follow_ups(
    conn: sqlite3.Connection,
    now: float,
    outcomes: Sequence[Outcome],
    states: Mapping[str, JobState],
) -> None:
    """Add the follow-ups of every job ``states`` shows completed by this
    step, batch by batch, in order; one for a batch gone since is dropped
    (its jobs went with it)."""
    by_batch: dict[str, list[NewJob]] = {}
    seen: set[str] = set()
    for outcome in outcomes:
        if outcome.job_id in seen:  # of several outcomes for a job, the first counts
            continue
        seen.add(outcome.job_id)
        if isinstance(outcome, Complete) and states.get(outcome.job_id) is JobState.COMPLETED:
            for follow_up in outcome.follow_ups:
                by_batch.setdefault(follow_up.batch_id, []).append(follow_up.job)
    for batch_id, jobs in by_batch.items():
        with contextlib.suppress(BatchNotFound):
            add_jobs(conn, now, batch_id, jobs)
