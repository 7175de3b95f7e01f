"""One job by id: look it up, cancel it, retry it.

Design notes
------------
A pending job is cancelled in the store, in one atomic step that fails it
``cancelled`` (``Store.cancel_job``); a job that is active is stopped by the
run holding it, when that run is on this engine (``BatchRunner.cancel_job``:
asked in its child at once, the child replaced after the grace if the
handler does not return). A job active on another engine of the cluster
is asked of that engine through the store (``Store.take_cancel_requests``,
which every engine running batches polls in ``serve_asks``). ``cancel``
then waits, bounded by the grace and a margin, until the job has left
``active``, so the answer says how it ended.

Retrying puts one failed job back to pending and wakes the batch's run (or
the cluster, which starts a batch that starts by itself).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import trio

from engine.core.retry import StoreRetry
from engine.core.runs import Runs
from engine.core.watch import ChildStats
from engine.errors import JobStateConflict, StoreError
from engine.store.base import Store
from engine.store.records import JobRecord
from protocols.lifecycle import JobState

__all__ = ["ASK_POLL_SECONDS", "JobControl"]

log = logging.getLogger("batchyard.engine")

#: How often ``cancel`` looks whether the job left ``active``: the store
#: answers in a millisecond; a tenth of a second is quick for a person.
_POLL_SECONDS = 0.1

#: Beyond the grace: a replaced child's jobs are written within this.
_MARGIN_SECONDS = 5.0

#: How often an engine running batches takes the cancels asked of it by
#: the other engines of the cluster: one store call a second while it runs
#: any, a delay a person asking does not mind.
ASK_POLL_SECONDS = 1.0


class JobControl:
    """The per-job requests of one engine.

    Args:
        store: the shared store (not owned).
        runs: this engine's runs.
        owner: this engine's lease owner name.
        grace_seconds: how long a cancelled handler may take to return.
        wake: called when a job went back to pending (the cluster looks).
        retry: the engine's policy for store steps met by an outage.
    """

    def __init__(
        self,
        *,
        store: Store,
        runs: Runs,
        owner: str,
        grace_seconds: float,
        wake: Callable[[], None],
        retry: StoreRetry,
    ) -> None:
        self._store = store
        self._runs = runs
        self._grace = grace_seconds
        self._wake = wake
        self._owner = owner
        self._retry = retry
        self._scope = trio.CancelScope()

    async def serve_asks(self) -> None:
        """Take the cancels other engines asked of this one and stop those
        jobs here, every ``ASK_POLL_SECONDS`` while batches run here, until
        ``close``. A store that does not answer is waited out (``retry``).

        Cancellation: may have partially happened (asks taken, jobs asked
        to stop).
        """
        with self._scope:
            while True:
                await trio.sleep(ASK_POLL_SECONDS)
                if not self._runs.status().running_batches:
                    continue
                take = partial(self._store.take_cancel_requests, self._owner)
                try:
                    asked = await self._retry.call(take)
                except StoreError as exc:  # refused: logged, asked again next round
                    log.warning("cannot take the cancels asked of this engine: %s", exc)
                    continue
                for job_id in asked:
                    self._cancel_held(job_id)

    def close(self) -> None:
        """Stop ``serve_asks``. Never blocks; idempotent."""
        self._scope.cancel()

    def _cancel_held(self, job_id: str) -> None:
        for batch_id in self._runs.status().running_batches:
            runner = self._runs.get(batch_id)
            if runner is not None and runner.cancel_job(job_id):
                return

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
            JobStateConflict: it is completed or failed already.
        """
        job = await self._store.get_job(job_id)
        found = await self._store.cancel_job(job_id)
        if found in (JobState.COMPLETED, JobState.FAILED):
            raise JobStateConflict(f"job {job_id!r} is {found.value} already")
        if found is JobState.ACTIVE:
            runner = self._runs.get(job.batch_id)
            if runner is not None:
                runner.cancel_job(job_id)
            # Polled: the job may end in this engine's run, be written by
            # the release of its replaced child, or end on another engine
            # (which takes the ask within ``ASK_POLL_SECONDS``); the store
            # is the one place that sees them all.
            deadline = trio.current_time() + self._grace + ASK_POLL_SECONDS + _MARGIN_SECONDS
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
