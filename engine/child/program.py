"""The child program of one batch run, over any pair of streams.

Design notes
------------
The child executes; it never touches the store. It speaks to the engine over
two dedicated pipes (``engine.child.process``), one JSON line per message
(``protocols.ipc``); its stdout and stderr belong to the handlers, whose
prints and logs the engine relays.

Life of a child: import the job modules, say ``Ready``, wait for ``Begin``,
say ``BatchStarted``, then run every job of every ``RunJobs`` on at most the
batch's concurrency of workers (``engine.child.workers``); the engine may
send a few more jobs than that, so the child never idles between results
and new work, and those queue until a worker takes them. A job is in flight
once a worker took it; before it starts it may wait (``_wait_to_start``)
for the batch's rate window (``engine.child.rate_window``) and a hold.
``Shutdown``: take nothing new (queued jobs, and jobs waiting to start, are
answered ``JobInterrupted``), let what is in flight finish, say ``Done``,
exit 0. ``Cancel``: cancel what is in flight, report each job
``JobInterrupted``, say ``Done``, exit 0. A handler's exception fails that
job only; its ``RateLimited`` hands the job back (``JobRateLimited``) and
holds back the start of every job that has not started for that long.
``CancelJob`` and a job's ``timeout_seconds`` stop one job alone
(``engine.child.job_control``). ``Ping`` is answered ``Pong`` by the loop
that reads the engine's messages, in any state, so only a child whose loop
runs answers it (``engine.core.silence``).

Noticing the engine's death: EOF on ``--ipc-in`` ends the child at once
(exit ``ENGINE_GONE``); the process around the program
(``engine.child.process``) also watches the parent pid.

Outbound messages queue in the outbox (``engine.child.outbox``) and are
written in bursts, once per scheduling round: a worker whose job ended
queues its result, takes its next job and queues that start, and the
round's one write carries them all before any new handler runs.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable

import trio

from engine.child.holds import StartHold
from engine.child.hooks import expose_raw_ipc_writer
from engine.child.job_control import JobScopes, JobTimedOut, call_within
from engine.child.outbox import Outbox
from engine.child.rate_window import RateWindow
from engine.child.workers import Workers
from engine.errors import RateLimited
from engine.jobs.follow_ups import FollowUps
from engine.jobs.registry import JobContext, JobRegistry
from protocols import ipc
from protocols.errors import LocalProtocolError, ProtocolError
from protocols.framing import NEED_DATA, LineFramer

__all__ = ["ENGINE_GONE", "ChildProgram", "serve_child"]

_READ_CHUNK = 65536

#: The exit code of a child whose engine went away.
ENGINE_GONE = 3


class ChildProgram:
    """The child's state while it runs a batch, and the life of one job.

    Args:
        registry: where job types are looked up.
        outbox: where reports go (and the tally is kept).
        write: the raw writer under ``outbox``, lent to fault job types
            (``engine.child.hooks``).
        clock: wall-clock seconds, when each job started (``JobStarted``).
    """

    def __init__(
        self,
        registry: JobRegistry,
        outbox: Outbox,
        write: Callable[[bytes], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self.outbox = outbox
        self._write = write
        self._clock = clock
        self.batch_id = ""
        self.draining = False
        #: The cancel scopes of the jobs waiting to start (``_wait_to_start``).
        self._waiting_to_start: set[trio.CancelScope] = set()
        self.job_scopes = JobScopes()
        self._hold = StartHold()
        self._window = RateWindow(None, 1.0)

    def assign(self, begin: ipc.Begin) -> None:
        """Run ``begin``'s batch (reports name it) within its rate and recent starts."""
        self.batch_id = begin.batch_id
        self._window = RateWindow.handed(begin.rate, wall_now=self._clock())

    def hand_back(self, jobs: Iterable[ipc.JobToRun]) -> None:
        """Answer held jobs that will not start ``JobInterrupted``."""
        for job in jobs:
            self.outbox.send(ipc.JobInterrupted(job_id=job.job_id))
            self.outbox.count_answered()

    async def run_job(self, job: ipc.JobToRun, scope: trio.CancelScope) -> None:
        """Run one held job and report it; never raises but ``Cancelled``.
        ``scope`` is the worker's: cancelling it (``job_scopes.cancel``)
        stops this job alone, reported interrupted.

        Cancellation: reports the job as interrupted, then re-raises.
        """
        self.job_scopes.bind(job.job_id, scope)
        try:
            if await self._wait_to_start(job):
                await self._run_reported(job)
            else:
                self.outbox.send(ipc.JobInterrupted(job_id=job.job_id))
        except trio.Cancelled:
            self.outbox.send(ipc.JobInterrupted(job_id=job.job_id))
            raise
        finally:
            self.job_scopes.unbind(job.job_id)
            self.outbox.count_answered()

    async def _wait_to_start(self, job: ipc.JobToRun) -> bool:
        """The one place a taken job waits before it starts: for the batch's
        rate window to take its cost, and while a handler's ``RateLimited``
        holds starts back; once this returns True the job starts at once.
        False (nothing taken, no start) when draining began first."""
        if self._window.take_nowait(job.cost, self._hold.until):
            return True
        if self.draining:
            return False
        with trio.CancelScope() as waiting:
            self._waiting_to_start.add(waiting)
            try:
                await self._window.take(job.cost, self._hold.until)
            finally:
                self._waiting_to_start.discard(waiting)
        return not waiting.cancelled_caught

    def start_draining(self) -> None:
        """Take nothing new; jobs waiting to start are handed back at once."""
        self.draining = True
        for waiting in self._waiting_to_start:
            waiting.cancel()

    async def _run_reported(self, job: ipc.JobToRun) -> None:
        # The engine must know a job started before its handler can take the
        # process down with it (a crash counts as an attempt only for jobs
        # that had started), so ``JobStarted`` is written before the handler
        # runs. Jobs that start together share one write, with the results
        # of the jobs that ended just before (``Outbox.send_written``).
        outbox = self.outbox
        await outbox.send_written(ipc.JobStarted(job_id=job.job_id, started_at=self._clock()))
        expose_raw_ipc_writer(self._write)
        follow_ups = FollowUps(self._registry)
        try:
            job_type = self._registry.get(job.type)
            ctx = JobContext(
                job_id=job.job_id,
                batch_id=self.batch_id,
                attempt=job.attempt,
                report=self._reporter(job.job_id, in_thread=not job_type.is_async),
                enqueue_to=follow_ups.enqueue,
            )
            result = await call_within(
                job.timeout_seconds, job_type, job.payload, ctx, self.job_scopes
            )
        except RateLimited as exc:  # back to the engine, no attempt used
            self._hold.hold_for(exc.retry_after)
            outbox.send(ipc.JobRateLimited(job_id=job.job_id, retry_after=exc.retry_after))
            return
        except Exception as exc:
            self._finish_failed(job.job_id, exc)
            return
        try:
            completed = ipc.JobCompleted(
                job_id=job.job_id, result=result, follow_ups=follow_ups.taken()
            )
            outbox.send(completed)
        except LocalProtocolError as exc:
            self._finish_failed(job.job_id, TypeError(f"result is not JSON: {exc}"))
            return
        outbox.count_finished(failed=False)

    def _finish_failed(self, job_id: str, exc: BaseException) -> None:
        error = str(exc) if isinstance(exc, JobTimedOut) else f"{type(exc).__name__}: {exc}"
        self.outbox.send(
            ipc.JobFailed(
                job_id=job_id,
                error=error,
                traceback="".join(traceback.format_exception(exc)),
            )
        )
        self.outbox.count_finished(failed=True)

    def _reporter(self, job_id: str, *, in_thread: bool) -> Callable[[float], None]:
        def report(percent: float) -> None:
            self.outbox.send(ipc.JobProgress(job_id=job_id, progress=percent))

        if not in_thread:
            return report
        token = trio.lowlevel.current_trio_token()
        return lambda percent: trio.from_thread.run_sync(report, percent, trio_token=token)


class _Inbox:
    """Parent messages read off the IPC stream, one at a time; a ``Ping``
    is answered (``pong``) here and not returned."""

    def __init__(self, stream: trio.abc.ReceiveStream, pong: Callable[[], object]) -> None:
        self._stream = stream
        self._pong = pong
        self._framer: LineFramer[ipc.ParentMessage] = LineFramer(ipc.ParentMessage)

    async def receive(self) -> ipc.ParentMessage | None:
        """The next message, or None at EOF (the engine is gone).

        Raises:
            RemoteProtocolError: the engine sent a malformed line.
        """
        while True:
            message = self._framer.next_message()
            if isinstance(message, ipc.Ping):
                self._pong()
                continue
            if message is not NEED_DATA:
                return message
            data = await self._stream.receive_some(_READ_CHUNK)
            if not data:
                return None
            self._framer.receive_data(data)


async def serve_child(
    ipc_in: trio.abc.ReceiveStream,
    write: Callable[[bytes], None],
    registry: JobRegistry,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run the child protocol: messages from ``ipc_in``, lines to ``write``;
    ``clock`` is the wall clock of the starts it reports (the engine's).

    Returns:
        The process exit code: 0 after ``Done`` or an orderly stop, 3 when
        the engine went away (EOF) mid-run, 4 on malformed IPC.

    Cancellation: may have partially happened; in-flight jobs are reported
    interrupted where the stream still takes it.
    """
    outbox = Outbox(write)
    program = ChildProgram(registry, outbox, write, clock)
    async with trio.open_nursery() as root:
        root.start_soon(outbox.write_loop)
        outbox.send(ipc.Ready(pid=os.getpid()))
        try:
            inbox = _Inbox(ipc_in, pong=lambda: outbox.send(ipc.Pong()))
            code = await _run_protocol(program, inbox)
        except* ProtocolError as group:
            # After Begin the error comes out of the batch's nurseries, grouped.
            exc: BaseException = group
            while isinstance(exc, BaseExceptionGroup):
                exc = exc.exceptions[0]
            print(f"batchyard child: malformed IPC from the engine: {exc}", file=sys.stderr)
            code = 4
        outbox.flush()
        root.cancel_scope.cancel()
    return code


async def _run_protocol(program: ChildProgram, inbox: _Inbox) -> int:
    message = await inbox.receive()
    if message is None or isinstance(message, ipc.Shutdown | ipc.Cancel):
        return 0
    if not isinstance(message, ipc.Begin):
        raise ProtocolError(f"expected begin, got {type(message).__name__}")
    return await _run_batch(program, message, inbox)


async def _run_batch(program: ChildProgram, begin: ipc.Begin, inbox: _Inbox) -> int:
    program.assign(begin)
    outbox = program.outbox
    outbox.send(ipc.BatchStarted(batch_id=begin.batch_id))
    stop = trio.Event()
    engine_gone = False

    def stop_taking(workers: Workers) -> None:
        program.start_draining()
        program.hand_back(workers.close())

    async def read(jobs: trio.Nursery, workers: Workers) -> None:
        nonlocal engine_gone
        while (message := await inbox.receive()) is not None:
            if isinstance(message, ipc.RunJobs):
                outbox.count_received(len(message.jobs))
                if program.draining:
                    program.hand_back(message.jobs)
                else:
                    workers.hand(message.jobs)
            elif isinstance(message, ipc.CancelJob):
                queued = workers.take_back(message.job_id)
                if queued is not None:
                    program.hand_back([queued])
                else:
                    program.job_scopes.cancel(message.job_id)
            elif isinstance(message, ipc.Shutdown | ipc.Cancel):
                stop_taking(workers)
                if isinstance(message, ipc.Cancel):
                    program.job_scopes.abandon_threads()
                    jobs.cancel_scope.cancel()
                stop.set()
            else:
                raise ProtocolError(f"unexpected {type(message).__name__} after begin")
        engine_gone = True
        stop_taking(workers)
        program.job_scopes.abandon_threads()
        jobs.cancel_scope.cancel()
        stop.set()

    # The reader outlives the jobs nursery: a Cancel may come while the jobs
    # drain after a Shutdown. Once every job is done the reader is cancelled.
    async with trio.open_nursery() as reading:
        async with trio.open_nursery() as jobs:
            workers = Workers(jobs, begin.concurrency, program.run_job)
            reading.start_soon(read, jobs, workers)
            try:
                await stop.wait()
            finally:
                # Whatever ends the batch (a malformed line included), no
                # held job goes unanswered.
                stop_taking(workers)
        reading.cancel_scope.cancel()
    if engine_gone:
        return ENGINE_GONE
    outbox.send(ipc.Done(completed=outbox.completed, failed=outbox.failed))
    return 0
