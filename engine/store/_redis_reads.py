"""The Redis store's reads of batches and jobs: one script each.

``RedisReads`` holds the ``Store`` methods that only read batches and jobs;
``RedisStore`` inherits them, so each is one script of
``engine.store._redis_scripts``, one round trip, shielded from
cancellation through the store's ``_run`` (see ``engine.store.redis``).
Counts are kept by Redis as jobs change state, never counted here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import BatchNotFound
from engine.store._redis_values import batch_record, counts_of, job_record, number, parse_cursor
from engine.store.records import BatchRecord, Counts, JobPage
from protocols.lifecycle import JobState

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RedisReads"]


class RedisReads:
    """The batch and job reads of ``Store`` on Redis, for ``RedisStore``.

    Every method is one script, shielded from cancellation, and raises
    ``StoreUnavailable`` when Redis cannot be reached.
    """

    if TYPE_CHECKING:
        _clock: Callable[[], float]

        async def _run(self, script: str, *args: str | int) -> Any: ...

    async def get_batch(self, batch_id: str) -> BatchRecord:
        """The batch with its counts and live run owner.

        Cancellation: shielded; it only reads.

        Raises:
            BatchNotFound: no such batch.
        """
        found = await self._run("get_batch", batch_id, number(self._clock()))
        if found is None:
            raise BatchNotFound(f"no batch {batch_id!r}")
        return batch_record(batch_id, *found)

    async def list_batches(self) -> list[BatchRecord]:
        """Every batch with its counts and live run owner, oldest first.

        Cancellation: shielded; it only reads.
        """
        rows = await self._run("list_batches", number(self._clock()))
        return [batch_record(*row) for row in rows]

    async def counts(self, batch_id: str) -> Counts:
        """Jobs of the batch per state (kept by Redis, never counted).

        Cancellation: shielded; it only reads.

        Raises:
            BatchNotFound: no such batch.
        """
        counts = await self._run("counts", batch_id)
        if counts is None:
            raise BatchNotFound(f"no batch {batch_id!r}")
        return counts_of(counts)

    async def queue_length(self) -> int:
        """Pending jobs across all batches (a counter, never a scan).

        Cancellation: shielded; it only reads.
        """
        return int(await self._run("queue_length"))

    async def counts_by_type(self) -> dict[str, Counts]:
        """Jobs per type and state over every batch (kept by Redis as jobs
        change state; the store's first call counts the jobs once).

        Cancellation: shielded; it only reads.
        """
        per_state = await self._run("counts_by_type")
        per_type: dict[str, dict[str, int]] = {}
        for state, flat in zip(JobState, per_state, strict=True):
            for type_name, n in zip(flat[::2], flat[1::2], strict=True):
                per_type.setdefault(str(type_name), {})[state.value] = int(n)
        return {name: Counts(**states) for name, states in sorted(per_type.items())}

    async def list_jobs(
        self,
        batch_id: str,
        *,
        state: JobState | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobPage:
        """Jobs in insertion order, ``limit`` at a time, resuming after ``cursor``.

        Cancellation: shielded; it only reads.

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
        after = parse_cursor(cursor)
        which = "all" if state is None else f"s:{state.value}"
        rows = await self._run("list_jobs", batch_id, which, after, limit + 1)
        if rows is None:
            raise BatchNotFound(f"no batch {batch_id!r}")
        next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
        return JobPage(
            jobs=tuple(job_record(row) for row in rows[:limit]), next_cursor=next_cursor
        )

    async def next_due_at(self, batch_id: str) -> float | None:
        """When the batch's earliest pending job is due (maybe in the past).

        Cancellation: shielded; it only reads.

        Returns:
            Wall-clock seconds, or None when the batch has no pending job.
        """
        due = await self._run("next_due_at", batch_id)
        return None if due is None else float(due)
