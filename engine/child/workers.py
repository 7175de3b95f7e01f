"""The child's workers: at most ``concurrency`` tasks, each running the jobs
the child holds one after another, in the order they came.

Design notes
------------
A task per job would cost every job a spawn, a cancel scope and a slot of
a ``trio.CapacityLimiter``, and a job queued for a slot could only start
in the scheduling round after the one that freed it. A worker instead
takes the next job the moment its job ends, in the same round: that job's
result and the next one's start leave in the same write
(``engine.child.outbox``). Workers are started as jobs come, never more
than the concurrency; a worker that finds no job waits until one is
handed to it.

Each worker runs its jobs inside a cancel scope of its own, handed to the
job runner with each job: cancelling it (``CancelJob``, through
``engine.child.job_control.JobScopes``) stops that worker's job alone, and
the worker goes on in a fresh scope, so a stop costs a scope but a job
does not.

All jobs of a worker run in its task, so a context variable that an
``async def`` handler sets is still set for the next job of that worker
(a ``def`` handler runs in its thread, in a copy of the context).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable

import trio

from protocols import ipc

__all__ = ["Workers"]

#: Runs one job to its report, within the worker's scope; never raises but
#: ``Cancelled``.
RunJob = Callable[[ipc.JobToRun, trio.CancelScope], Awaitable[None]]


class Workers:
    """The jobs the child holds and the worker tasks that run them.

    A job handed while fewer than ``concurrency`` jobs are taken is taken
    at once by an idle worker, or by a worker started for it while fewer
    than ``concurrency`` workers exist: from then on it is in flight, and
    no ``close`` returns it. Others queue (a worker still busy with a job
    that ignored its stop takes the first of them when it is free).

    Args:
        nursery: where workers are started; it owns them.
        concurrency: how many jobs may run at once, so how many workers
            there may be.
        run: runs one job (its scope: the worker's current one).
    """

    def __init__(self, nursery: trio.Nursery, concurrency: int, run: RunJob) -> None:
        self._nursery = nursery
        self._concurrency = concurrency
        self._run = run
        self._queued: deque[ipc.JobToRun] = deque()
        self._idle: list[trio.lowlevel.Task] = []
        #: What each woken worker was handed (None: no more jobs).
        self._handed: dict[trio.lowlevel.Task, ipc.JobToRun | None] = {}
        self._taken = 0
        self._workers = 0
        self._closed = False

    def hand(self, jobs: Iterable[ipc.JobToRun]) -> None:
        """Take each of ``jobs`` at once while the concurrency leaves room,
        queue the rest behind those already queued."""
        for job in jobs:
            if self._taken == self._concurrency:
                self._queued.append(job)
            elif self._idle:
                self._taken += 1
                self._wake(job)
            elif self._workers < self._concurrency:
                self._taken += 1
                self._workers += 1
                self._nursery.start_soon(self._work, job)
            else:
                self._queued.append(job)

    def take_back(self, job_id: str) -> ipc.JobToRun | None:
        """Remove the queued job ``job_id`` (not taken yet); None when no
        queued job has that id."""
        for job in self._queued:
            if job.job_id == job_id:
                self._queued.remove(job)
                return job
        return None

    def close(self) -> list[ipc.JobToRun]:
        """Take no job any more: the queued ones are removed and returned,
        in order; each worker ends once its job (if any) is done."""
        self._closed = True
        queued = list(self._queued)
        self._queued.clear()
        while self._idle:
            self._wake(None)
        return queued

    def _wake(self, job: ipc.JobToRun | None) -> None:
        task = self._idle.pop()
        self._handed[task] = job
        trio.lowlevel.reschedule(task)

    async def _work(self, job: ipc.JobToRun | None) -> None:
        try:
            while job is not None:
                # A job's stop cancels this scope: the job ends there (or, if
                # it swallowed the stop, the next take raises it), and the
                # worker goes on in a fresh scope.
                with trio.CancelScope() as scope:
                    while job is not None:
                        try:
                            await self._run(job, scope)
                        finally:
                            self._taken -= 1
                        job = await self._next()
                    return  # closed
                job = await self._next()
        finally:
            self._workers -= 1

    async def _next(self) -> ipc.JobToRun | None:
        """The next job for this worker, None once closed.

        Cancellation: atomic: nothing happened (no job taken).
        """
        if self._queued:
            # No yield: the job starts in this round. A stop (of the whole
            # child, or of the job just ended) is still heard first.
            await trio.lowlevel.checkpoint_if_cancelled()
            self._taken += 1
            return self._queued.popleft()
        if self._closed:
            return None
        task = trio.lowlevel.current_task()
        self._idle.append(task)

        def abort(_: object) -> trio.lowlevel.Abort:
            self._idle.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        return self._handed.pop(task)
