"""The SQLite store's reads of batches and jobs: one read transaction each.

``SqliteReads`` holds the ``Store`` methods that only read batches and
jobs; ``SqliteStore`` inherits them, so they run the same way as every
other method: one transaction (a plain ``BEGIN``, so their queries share
one snapshot), in the worker thread, through the store's ``_run`` (see
``engine.store.sqlite`` for the cancellation and error model). Their
bodies and SQL are in ``engine.store._sqlite_ops``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from engine.store import _sqlite_ops as ops
from engine.store import _sqlite_type_counts

if TYPE_CHECKING:
    import sqlite3

    from engine.store.records import BatchRecord, Counts, JobPage
    from protocols.lifecycle import JobState

__all__ = ["SqliteReads"]

_T = TypeVar("_T")


class SqliteReads:
    """The batch and job reads of ``Store`` on SQLite, for ``SqliteStore``.

    Every method is one read transaction, atomic under cancellation, and
    raises ``StoreUnavailable`` when SQLite cannot do the work.
    """

    if TYPE_CHECKING:

        async def _run(
            self, work: Callable[[sqlite3.Connection, float], _T], *, write: bool
        ) -> _T: ...

    async def get_batch(self, batch_id: str) -> BatchRecord:
        """The batch with its counts and live run owner.

        Cancellation: atomic: it only reads.

        Raises:
            BatchNotFound: no such batch.
        """
        return await self._run(lambda conn, now: ops.get_batch(conn, now, batch_id), write=False)

    async def list_batches(self) -> list[BatchRecord]:
        """Every batch with its counts and live run owner, oldest first.

        Cancellation: atomic: it only reads.
        """
        return await self._run(ops.list_batches, write=False)

    async def counts(self, batch_id: str) -> Counts:
        """Jobs of the batch per state.

        Cancellation: atomic: it only reads.

        Raises:
            BatchNotFound: no such batch.
        """
        return await self._run(lambda conn, now: ops.counts(conn, now, batch_id), write=False)

    async def queue_length(self) -> int:
        """Pending jobs across all batches.

        Cancellation: atomic: it only reads.
        """
        return await self._run(ops.queue_length, write=False)

    async def counts_by_type(self) -> dict[str, Counts]:
        """Jobs per type and state over every batch (counters kept by
        triggers, never a scan of jobs).

        Cancellation: atomic: it only reads.
        """
        return await self._run(_sqlite_type_counts.counts_by_type, write=False)

    async def list_jobs(
        self,
        batch_id: str,
        *,
        state: JobState | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobPage:
        """Jobs in insertion order, ``limit`` at a time, resuming after ``cursor``.

        Cancellation: atomic: it only reads.

        Args:
            batch_id: the batch.
            state: only jobs in this state.
            limit: the most jobs on the page, at least 1.
            cursor: the previous page's ``next_cursor``; None to start.

        Returns:
            The page; its ``next_cursor`` is None when no job follows it.

        Raises:
            BatchNotFound: no such batch.
            ValueError: ``limit`` is below 1, or the cursor is not one this
                store gave out.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        after = ops.parse_cursor(cursor)
        return await self._run(
            lambda conn, now: ops.list_jobs(conn, now, batch_id, state, limit, after), write=False
        )

    async def next_due_at(self, batch_id: str) -> float | None:
        """When the batch's earliest pending job is due (maybe in the past).

        Cancellation: atomic: it only reads.

        Returns:
            Wall-clock seconds, or None when the batch has no pending job.
        """
        return await self._run(lambda conn, now: ops.next_due_at(conn, now, batch_id), write=False)
