"""The SQLite store's methods on one job by id: look-up, cancel, retry,
and the progress its handler reported.

``SqliteJobs`` is inherited by ``SqliteStore`` like its other method groups
(one transaction per call through the store's ``_run``; see
``engine.store.sqlite``). Every state change is guarded by the lifecycle
table (``guard``), so a job that moved on meanwhile is left alone and the
caller learns the state it found.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from engine.errors import JobNotFound
from engine.store._sqlite_ops import _JOB_COLUMNS, _job, guard, target
from engine.store.records import JobRecord
from protocols.lifecycle import JobEvent, JobState

__all__ = ["SqliteJobs"]

_T = TypeVar("_T")

_GET = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?"
_CANCEL = f"""
UPDATE jobs SET state = {target(JobEvent.CANCEL)}, error = :error, traceback = NULL,
    finished_at = :now
WHERE job_id = :job_id AND {guard(JobEvent.CANCEL)}
"""
_RETRY = f"""
UPDATE jobs SET state = {target(JobEvent.REQUEUE)}, attempts = 0, error = NULL,
    traceback = NULL, result = NULL, available_at = :now, finished_at = NULL,
    started_at = NULL, progress = NULL
WHERE job_id = :job_id AND {guard(JobEvent.REQUEUE)}
"""
# An active job's cancel is asked of the engine holding its lease.
_ASK = (
    f"UPDATE jobs SET cancel_requested = 1 WHERE job_id = ? AND state = '{JobState.ACTIVE.value}'"
)
_TAKE_ASKS = (
    "UPDATE jobs SET cancel_requested = NULL WHERE lease_owner = ? AND cancel_requested = 1"
    f" AND state = '{JobState.ACTIVE.value}' RETURNING job_id"
)
_PROGRESS = (
    "UPDATE jobs SET progress = ? WHERE job_id = ? AND lease_owner = ?"
    f" AND state = '{JobState.ACTIVE.value}'"
)


def _get(conn: sqlite3.Connection, job_id: str) -> JobRecord:
    row = conn.execute(_GET, (job_id,)).fetchone()
    if row is None:
        raise JobNotFound(f"no job {job_id!r}")
    return _job(row)


def _cancel(conn: sqlite3.Connection, now: float, job_id: str, error: str) -> JobState:
    found = _get(conn, job_id).state
    conn.execute(_CANCEL, {"job_id": job_id, "error": error, "now": now})
    if found is JobState.ACTIVE:
        conn.execute(_ASK, (job_id,))
    return found


def _retry(conn: sqlite3.Connection, now: float, job_id: str) -> bool:
    _get(conn, job_id)
    return conn.execute(_RETRY, {"job_id": job_id, "now": now}).rowcount == 1


class SqliteJobs:
    """One job by id on SQLite, for ``SqliteStore``; each method is one
    transaction, atomic under cancellation, and raises ``StoreUnavailable``
    when SQLite cannot do the work."""

    if TYPE_CHECKING:

        async def _run(
            self, work: Callable[[sqlite3.Connection, float], _T], *, write: bool
        ) -> _T: ...

    async def get_job(self, job_id: str) -> JobRecord:
        """The job as stored.

        Cancellation: atomic: it only reads.

        Raises:
            JobNotFound: no such job.
        """
        return await self._run(lambda conn, now: _get(conn, job_id), write=False)

    async def cancel_job(self, job_id: str, error: str = "cancelled") -> JobState:
        """A pending job becomes failed with ``error``; an active one is
        marked for its engine (``take_cancel_requests``); any other is left
        as it is.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Returns:
            The state the job was in (``pending``: it is failed now).

        Raises:
            JobNotFound: no such job.
        """
        return await self._run(lambda conn, now: _cancel(conn, now, job_id, error), write=True)

    async def retry_job(self, job_id: str) -> bool:
        """A failed job back to pending, due now, attempts and error reset.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Returns:
            Whether it was failed (and is pending now).

        Raises:
            JobNotFound: no such job.
        """
        return await self._run(lambda conn, now: _retry(conn, now, job_id), write=True)

    async def take_cancel_requests(self, owner: str) -> list[str]:
        """The active jobs under ``owner``'s lease whose cancel was asked
        (``cancel_job``) since the last call; each is handed out once.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.
        """
        return await self._run(
            lambda conn, now: [row[0] for row in conn.execute(_TAKE_ASKS, (owner,))], write=True
        )

    async def record_progress(self, progress: Mapping[str, float], *, owner: str) -> None:
        """Note the percentage each job's handler last reported, for the
        jobs active under ``owner``'s lease (the others are skipped).

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.
        """
        rows = [(percent, job_id, owner) for job_id, percent in progress.items()]
        if rows:
            await self._run(lambda conn, now: conn.executemany(_PROGRESS, rows), write=True)
