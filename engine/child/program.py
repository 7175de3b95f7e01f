"""The child program of one batch run, over any pair of streams.

Design notes
------------
The child executes; it never touches the store. It speaks to the engine over
two dedicated pipes (``engine.child.process``), one JSON line per message
(``protocols.ipc``); its stdout and stderr belong to the handlers, whose
prints and logs the engine relays.

Life of a child: import the job modules, say ``Ready``, wait for ``Begin``,
say ``BatchStarted``, then run every job of every ``RunJobs`` under a
``trio.CapacityLimiter`` of the batch's concurrency (the engine may send a
few more jobs than that, so the child never idles between results and new
work; those queue for the limiter). A job is in flight once it holds a
slot. ``Shutdown``: take nothing new (queued jobs are answered
``JobInterrupted``), let what is in flight finish, say ``Done``, exit 0.
``Cancel``: cancel what is in flight, report each job ``JobInterrupted``,
say ``Done``, exit 0. A handler's exception fails that job only; its
``RateLimited`` hands the job back (``JobRateLimited``) and holds back the
start of every job that has not started for that long. A job holding its
slot waits there, and for the batch's rate window (``engine.child.rate_window``).
``CancelJob`` and a job's ``timeout_seconds`` stop one job alone
(``engine.child.job_control``). ``Ping`` is answered ``Pong`` by the loop
that reads the engine's messages, in any state, so only a child whose loop
runs answers it (``engine.core.silence``).

Noticing the engine's death: EOF on ``--ipc-in`` ends the child at once
(exit ``ENGINE_GONE``); the process around the program
(``engine.child.process``) also watches the parent pid.

Outbound messages queue in the program and are written in bursts, once per
scheduling round (``write_loop``): the burst is one ``Reports`` line, so it
costs one system call here and one line to decode in the engine; ``flush``
writes at once where the engine must see a message before the next step.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable
from functools import partial

import trio

from engine.child.holds import StartHold
from engine.child.hooks import expose_raw_ipc_writer
from engine.child.job_control import JobScopes, JobTimedOut, call_within
from engine.child.rate_window import RateWindow
from engine.errors import RateLimited
from engine.jobs.follow_ups import FollowUps
from engine.jobs.registry import JobContext, JobRegistry
from protocols import ipc
from protocols.errors import LocalProtocolError, ProtocolError
from protocols.framing import NEED_DATA, LineFramer, reports_lines

__all__ = ["ENGINE_GONE", "ChildProgram", "serve_child"]

_READ_CHUNK = 65536

#: The exit code of a child whose engine went away.
ENGINE_GONE = 3


class ChildProgram:
    """The child's state: its pipes' framing, its tallies and its outbox.

    Args:
        registry: where job types are looked up.
        write: writes bytes to the engine, all of them, blocking if it must;
            raises ``OSError`` when the engine's end is gone.
        clock: wall-clock seconds, when each job started (``JobStarted``).
    """

    def __init__(
        self,
        registry: JobRegistry,
        write: Callable[[bytes], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._write = write
        self._clock = clock
        self._lines: list[bytes] = []
        self._has_lines = trio.Event()
        self._broken = False
        self._encoder: LineFramer[ipc.ChildMessage] = LineFramer(ipc.ChildMessage)
        self.batch_id = ""
        self.in_flight = 0
        self.completed = 0
        self.failed = 0
        self.finished_since_progress = 0
        self.draining = False
        self._queued: set[trio.CancelScope] = set()
        self.job_scopes = JobScopes()
        self._hold = StartHold()
        self._window = RateWindow(None, 1.0)

    def assign(self, begin: ipc.Begin) -> None:
        """Run ``begin``'s batch (reports name it) within its rate and recent starts."""
        self.batch_id = begin.batch_id
        self._window = RateWindow.handed(begin.rate, wall_now=self._clock())

    def send(self, message: ipc.ChildMessage) -> None:
        """Encode and queue one message; the writer sends it soon."""
        self._lines.append(self._encoder.encode_object(message))
        self._has_lines.set()

    def flush(self) -> None:
        """Write every queued line now, with a ``Progress`` line when jobs
        finished since the last one. After the engine's end broke, lines are
        dropped: nobody is left to read them."""
        if not self._lines:
            return
        if self.finished_since_progress:
            self.finished_since_progress = 0
            self.send(
                ipc.Progress(
                    in_flight=self.in_flight, completed=self.completed, failed=self.failed
                )
            )
        data = reports_lines(self._lines)
        self._lines.clear()
        if self._broken:
            return
        try:
            self._write(data)
        except OSError:
            self._broken = True

    async def write_loop(self) -> None:
        """Flush in bursts: once per scheduling round in which lines came.

        Cancellation: lines still queued stay queued for a final ``flush``.
        """
        while True:
            await self._has_lines.wait()
            self._has_lines = trio.Event()
            # Let the other tasks runnable now add their lines first, so a
            # burst of results costs one write.
            await trio.lowlevel.checkpoint()
            self.flush()

    async def run_job(
        self, job: ipc.JobToRun, limiter: trio.CapacityLimiter, *, has_slot: bool
    ) -> None:
        """Run one job under ``limiter`` and report it; never raises but
        ``Cancelled``. ``has_slot``: the caller already holds the job's slot
        (borrowed on behalf of its id); else the job queues for one, and a
        shutdown that comes while it queues returns it unstarted.

        Cancellation: reports the job as interrupted, then re-raises.
        """
        self.in_flight += 1
        try:
            if not has_slot and not await self._queue_for_slot(job.job_id, limiter):
                self.send(ipc.JobInterrupted(job_id=job.job_id))
                return
            try:
                if await self._wait_to_start(job.cost):
                    await self._run_reported(job)
                else:
                    self.send(ipc.JobInterrupted(job_id=job.job_id))
            finally:
                limiter.release_on_behalf_of(job.job_id)
        except trio.Cancelled:
            self.send(ipc.JobInterrupted(job_id=job.job_id))
            raise
        finally:
            self.in_flight -= 1

    async def run_cancellable(
        self, job: ipc.JobToRun, limiter: trio.CapacityLimiter, *, has_slot: bool
    ) -> None:
        """``run_job`` in the job's own scope (``job_scopes``), so that
        ``CancelJob`` stops it alone, reported interrupted.

        Cancellation: as ``run_job``.
        """
        with self.job_scopes.scope_of(job.job_id):
            await self.run_job(job, limiter, has_slot=has_slot)

    async def _queue_for_slot(self, job_id: str, limiter: trio.CapacityLimiter) -> bool:
        """Wait for a slot; False (holding none) when draining began first."""
        with trio.CancelScope() as queued:
            self._queued.add(queued)
            try:
                await limiter.acquire_on_behalf_of(job_id)
            finally:
                self._queued.discard(queued)
        return not queued.cancelled_caught

    async def _wait_to_start(self, cost: float) -> bool:
        """Wait out a ``RateLimited`` hold and for the rate window to take ``cost``
        (the job starts at once); False (nothing taken) when draining began first."""
        if self._window.take_nowait(cost, self._hold.until):
            return True
        if self.draining:
            return False
        with trio.CancelScope() as queued:
            self._queued.add(queued)
            try:
                await self._window.take(cost, self._hold.until)
            finally:
                self._queued.discard(queued)
        return not queued.cancelled_caught

    def start_draining(self) -> None:
        """Take nothing new; queued jobs are handed back at once."""
        self.draining = True
        for queued in self._queued:
            queued.cancel()

    async def _run_reported(self, job: ipc.JobToRun) -> None:
        # The engine must know a job started before its handler can take the
        # process down with it (a crash counts as an attempt only for jobs
        # that had started), so ``JobStarted`` is written before the handler runs.
        # Jobs that start together share one write: each queues its line,
        # lets the others of this scheduling round queue theirs, then
        # flushes (the first flush writes them all; the rest find nothing).
        self.send(ipc.JobStarted(job_id=job.job_id, started_at=self._clock()))
        await trio.lowlevel.checkpoint()
        self.flush()
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
            self.send(ipc.JobRateLimited(job_id=job.job_id, retry_after=exc.retry_after))
            return
        except Exception as exc:
            self._finish_failed(job.job_id, exc)
            return
        try:
            completed = ipc.JobCompleted(
                job_id=job.job_id, result=result, follow_ups=follow_ups.taken()
            )
            self.send(completed)
        except LocalProtocolError as exc:
            self._finish_failed(job.job_id, TypeError(f"result is not JSON: {exc}"))
            return
        self.completed += 1
        self.finished_since_progress += 1

    def _finish_failed(self, job_id: str, exc: BaseException) -> None:
        error = str(exc) if isinstance(exc, JobTimedOut) else f"{type(exc).__name__}: {exc}"
        self.send(
            ipc.JobFailed(
                job_id=job_id,
                error=error,
                traceback="".join(traceback.format_exception(exc)),
            )
        )
        self.failed += 1
        self.finished_since_progress += 1

    def _reporter(self, job_id: str, *, in_thread: bool) -> Callable[[float], None]:
        def report(percent: float) -> None:
            self.send(ipc.JobProgress(job_id=job_id, progress=percent))

        if not in_thread:
            return report
        token = trio.lowlevel.current_trio_token()
        return lambda percent: trio.from_thread.run_sync(report, percent, trio_token=token)


class _Inbox:
    """Parent messages read off the IPC stream, one at a time; a ``Ping``
    is answered (``pong``) here and not returned."""

    def __init__(self, stream: trio.abc.ReceiveStream, pong: Callable[[], None]) -> None:
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
    program = ChildProgram(registry, write, clock)
    async with trio.open_nursery() as root:
        root.start_soon(program.write_loop)
        program.send(ipc.Ready(pid=os.getpid()))
        try:
            inbox = _Inbox(ipc_in, pong=lambda: program.send(ipc.Pong()))
            code = await _run_protocol(program, inbox)
        except* ProtocolError as group:
            # After Begin the error comes out of the batch's nurseries, grouped.
            exc: BaseException = group
            while isinstance(exc, BaseExceptionGroup):
                exc = exc.exceptions[0]
            print(f"batchyard child: malformed IPC from the engine: {exc}", file=sys.stderr)
            code = 4
        program.flush()
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
    program.send(ipc.BatchStarted(batch_id=begin.batch_id))
    limiter = trio.CapacityLimiter(begin.concurrency)
    stop = trio.Event()
    engine_gone = False

    async def read(jobs: trio.Nursery) -> None:
        nonlocal engine_gone
        while (message := await inbox.receive()) is not None:
            if isinstance(message, ipc.RunJobs):
                for job in message.jobs:
                    if program.draining:
                        program.send(ipc.JobInterrupted(job_id=job.job_id))
                        continue
                    # A job that finds a free slot is in flight from here on;
                    # one that must queue is not, until it gets its slot.
                    try:
                        limiter.acquire_on_behalf_of_nowait(job.job_id)
                    except trio.WouldBlock:
                        has_slot = False
                    else:
                        has_slot = True
                    run = partial(program.run_cancellable, job, limiter, has_slot=has_slot)
                    jobs.start_soon(run)
            elif isinstance(message, ipc.CancelJob):
                program.job_scopes.cancel(message.job_id)
            elif isinstance(message, ipc.Shutdown | ipc.Cancel):
                program.start_draining()
                if isinstance(message, ipc.Cancel):
                    program.job_scopes.abandon_threads()
                    jobs.cancel_scope.cancel()
                stop.set()
            else:
                raise ProtocolError(f"unexpected {type(message).__name__} after begin")
        engine_gone = True
        program.job_scopes.abandon_threads()
        jobs.cancel_scope.cancel()
        stop.set()

    # The reader outlives the jobs nursery: a Cancel may come while the jobs
    # drain after a Shutdown. Once every job is done the reader is cancelled.
    async with trio.open_nursery() as reading:
        async with trio.open_nursery() as jobs:
            reading.start_soon(read, jobs)
            await stop.wait()
        reading.cancel_scope.cancel()
    if engine_gone:
        return ENGINE_GONE
    program.send(ipc.Done(completed=program.completed, failed=program.failed))
    return 0
