"""One job by id: look it up, cancel it, retry it.

Design notes
------------
A pending job is cancelled in the store, in one atomic step that fails it
``cancelled`` (``Store.cancel_job``); a job that is active is stopped by the
run holding it, when that run is on this engine (``BatchRunner.cancel_job``:
asked in its child at once, the child replaced after the grace if the
handler does not return). ``cancel`` then waits, bounded by the grace and
a margin, until the job has left ``active``, so the answer says how it
ended. A job active on another engine of the cluster is refused with 409
naming that engine: only the engine holding a job can stop it.

Retrying puts one failed job back to pending and wakes the batch's run (or
the cluster, which starts a batch that starts by itself).
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from engine.core.runs import Runs
from engine.core.watch import ChildStats
from engine.errors import JobStateConflict
from engine.store.base import Store
from engine.store.records import JobRecord
from protocols.lifecycle import JobState

__all__ = ["JobControl"]

#: How often ``cancel`` looks whether the job left ``active``: the store
#: answers in a millisecond; a tenth of a second is quick for a person.
_POLL_SECONDS = 0.1

#: Beyond the grace: a replaced child's jobs are written within this.
_MARGIN_SECONDS = 5.0


class JobControl:
    """The per-job requests of one engine.

    Args:
        store: the shared store (not owned).
        runs: this engine's runs.
        grace_seconds: how long a cancelled handler may take to return.
        wake: called when a job went back to pending (the cluster looks).
    """

    def __init__(
        self, *, store: Store, runs: Runs, grace_seconds: float, wake: Callable[[], None]
    ) -> None:
        self._store = store
        self._runs = runs
        self._grace = grace_seconds
        self._wake = wake

    async def get(self, job_id: str) -> JobRecord:
        """The job. Raises ``JobNotFound``.

        Cancellation: atomic.
        """
        return await self._store.get_job(job_id)

    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel the job: failed ``cancelled`` when it was pending; stopped
        in its child when it is active here.

        Cancellation: may have partially happened (the job is being stopped).

        Returns:
            The job afterwards (an active job that has not ended within the
            grace and a margin is still ``active``).

        Raises:
            JobNotFound: no such job.
            JobStateConflict: it is completed or failed already, or active
                on another engine.
        """
        job = await self._store.get_job(job_id)
        found = await self._store.cancel_job(job_id)
        if found in (JobState.COMPLETED, JobState.FAILED):
            raise JobStateConflict(f"job {job_id!r} is {found.value} already")
        if found is JobState.ACTIVE:
            runner = self._runs.get(job.batch_id)
            if runner is None or not runner.cancel_job(job_id):
                raise JobStateConflict(
                    f"job {job_id!r} is active on another engine: cancel it there"
                )
            # Polled: the job may end in this engine's run or be written by
            # the release of its replaced child, and the store is the one
            # place that sees both.
            deadline = trio.current_time() + self._grace + _MARGIN_SECONDS
            job = await self._store.get_job(job_id)
            while job.state is JobState.ACTIVE and trio.current_time() < deadline:
                await trio.sleep(_POLL_SECONDS)
                job = await self._store.get_job(job_id)
            return job
        return await self._store.get_job(job_id)

    async def retry(self, job_id: str) -> JobRecord:
        """A failed job back to pending; its batch's run picks it up.

        Cancellation: atomic.

        Returns:
            The job, pending.

        Raises:
            JobNotFound: no such job.
            JobStateConflict: it is not failed.
        """
        job = await self._store.get_job(job_id)
        if not await self._store.retry_job(job_id):
            raise JobStateConflict(f"job {job_id!r} is {job.state.value}, not failed")
        self._runs.wake(job.batch_id)
        self._wake()
        return await self._store.get_job(job_id)

    def child_of(self, batch_id: str) -> ChildStats | None:
        """The child running ``batch_id`` on this engine, None when none does."""
        runner = self._runs.get(batch_id)
        return None if runner is None else runner.child_stats()
