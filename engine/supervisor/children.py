"""Child processes: started, kept warm, stopped gracefully, always reaped.

Design notes
------------
Every child lives in a task of the supervisor's nursery that runs it
through the supervisor's ``Spawner`` (``engine.supervisor.spawner``; the
real one runs ``trio.run_process`` with the IPC pipes in ``pass_fds``).
Its stdout and stderr are relayed line by line to the engine's log with a
``[batch ID]`` prefix, in a nursery that outlives the process's cancel
scope, so what a child prints while it drains is not lost.

*Warm* children: interpreter start-up and importing trio cost far more than
anything else in a batch start, so the supervisor keeps ``warm`` children
started and idle (they have said ``Ready`` and wait for ``Begin``). ``take``
hands one out (each child still serves exactly one batch run) and starts a
replacement in the background.

*Stopping* a child is cancelling its scope. The spawner (as
``run_process`` does) then calls ``deliver_cancel``, which sends the
child's stop message (``Shutdown`` or ``Cancel``), waits until the child's
deadline, then SIGKILLs it; the spawner always waits for the exit before
the task ends. Engine shutdown stops every child with one shared deadline;
``kill_all_now`` ends the wait of all of them at once (a second SIGINT).
"""

from __future__ import annotations

import contextlib
import logging
import math
from functools import partial

import trio

from engine.errors import ChildCrashed
from engine.supervisor.channel import ChildChannel
from engine.supervisor.spawner import ChildProcess, Spawner
from protocols import ipc

__all__ = ["Child", "ChildSupervisor"]

log = logging.getLogger("batchyard.child")

#: A child that has not said Ready in this long is broken (start-up takes
#: about a quarter of a second here; a loaded machine may take several).
_READY_TIMEOUT_SECONDS = 30.0


class Child:
    """One child process and the parent's end of its IPC pipes."""

    def __init__(self, supervisor: ChildSupervisor, channel: ChildChannel) -> None:
        self._supervisor = supervisor
        self.channel = channel
        self.process: ChildProcess | None = None
        self.label = "warm"
        #: Once taken, the taker owns ``channel`` and closes it when done
        #: reading (what the child wrote before it died is still there).
        self.taken = False
        self.scope = trio.CancelScope()
        self.exited = trio.Event()
        self._stop_message: ipc.ParentMessage = ipc.Shutdown()
        self._deadline: float | None = None

    @property
    def returncode(self) -> int | None:
        """The exit code once the child exited (negative: killed by a signal)."""
        return None if self.process is None else self.process.returncode

    def hand_over(self) -> None:
        """The supervisor gives this child to a run, which owns ``channel``
        from now on."""
        self.taken = True

    def assign(self, batch_id: str) -> None:
        """This child now runs ``batch_id``: its output is logged under that id."""
        self.label = batch_id

    def stop(self, message: ipc.ParentMessage, deadline: float) -> None:
        """Ask the child to stop with ``message``; SIGKILL it at ``deadline``
        (``trio.current_time()``) if it is still running. Never blocks."""
        self._stop_message = message
        self._deadline = deadline if self._deadline is None else min(self._deadline, deadline)
        self.scope.cancel()

    def kill(self) -> None:
        """SIGKILL the child now (its spawner's task then reaps it)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    async def wait(self) -> int:
        """Wait for the exit; the exit code.

        Cancellation: atomic; the child keeps running.
        """
        await self.exited.wait()
        code = self.returncode
        assert code is not None
        return code

    async def _deliver_cancel(self, process: ChildProcess) -> None:
        with trio.move_on_after(1), contextlib.suppress(ChildCrashed):
            await self.channel.send(self._stop_message)
        # Cancelled without stop() (the engine's nursery is unwinding): the
        # default grace applies, so the wait is always bounded.
        deadline = self._deadline
        if deadline is None:
            deadline = trio.current_time() + self._supervisor.grace_seconds
        with trio.move_on_at(deadline):
            await self._supervisor._kill_now.wait()
        if process.returncode is None:
            log.warning(
                "[batch %s] child %d did not stop in time: SIGKILL", self.label, process.pid
            )
            process.kill()


class ChildSupervisor:
    """Starts children in ``nursery`` and keeps ``warm`` of them idle.

    Args:
        nursery: owns every child's task.
        spawner: makes each child.
        warm: how many idle children to keep ready.
        grace_seconds: how long a child cancelled without an explicit
            ``stop`` gets before SIGKILL.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        spawner: Spawner,
        warm: int,
        grace_seconds: float,
    ) -> None:
        self._nursery = nursery
        self.grace_seconds = grace_seconds
        self._spawner = spawner
        self._warm = warm
        self._idle_send, self._idle_receive = trio.open_memory_channel[Child | None](math.inf)
        self._idle_count = 0
        self._starting = 0
        self._live: set[Child] = set()
        self._stopping = False
        self._kill_now = trio.Event()
        self._warm_ready = trio.Event()

    def keep_warm(self) -> None:
        """Start idle children until ``warm`` of them are ready or starting
        (none once ``stop_all`` was called)."""
        if self._stopping:
            return
        for _ in range(self._warm - self._idle_count - self._starting):
            self._starting += 1
            self._nursery.start_soon(self._start_warm)

    async def _start_warm(self) -> None:
        child: Child | None = None
        try:
            child = await self._nursery.start(self._child_life)
        except ChildCrashed as exc:
            # Stopped while it started (shutdown) is no failure of its own.
            log.log(logging.DEBUG if self._stopping else logging.ERROR, "warm child: %s", exc)
        finally:
            self._starting -= 1
        if child is not None and self._stopping:
            child.stop(ipc.Shutdown(), trio.current_time())
            child = None
        self._idle_count += child is not None
        if self._idle_count >= self._warm:
            self._warm_ready.set()
        # None wakes a taker waiting on this start, so it starts its own.
        self._idle_send.send_nowait(child)

    async def wait_warm(self) -> None:
        """Return once ``warm`` idle children are ready (at once if none are
        kept, or when the pool has been stopped).

        Cancellation: atomic.
        """
        if self._warm == 0 or self._stopping:
            await trio.lowlevel.checkpoint()
            return
        await self._warm_ready.wait()

    async def take(self) -> Child:
        """A ready child for one batch run: a warm one if one is ready or
        starting, else a new one.

        Cancellation: atomic; a child started for a cancelled take is stopped.

        Raises:
            ChildCrashed: a new child died or hung before it was ready.
        """
        while True:
            try:
                child = self._idle_receive.receive_nowait()
            except trio.WouldBlock:
                if not self._starting:
                    break
                child = await self._idle_receive.receive()
            if child is None:
                continue
            self._idle_count -= 1
            self._warm_ready = trio.Event()
            if not child.exited.is_set():
                child.hand_over()
                self.keep_warm()
                return child
            await child.channel.aclose()
        fresh: Child = await self._nursery.start(self._child_life)
        fresh.hand_over()
        self.keep_warm()
        return fresh

    def stop_all(self, deadline: float) -> None:
        """Stop every child (idle or busy) with ``Shutdown`` by ``deadline``."""
        self._stopping = True
        for child in list(self._live):
            child.stop(ipc.Shutdown(), deadline)

    def kill_all_now(self) -> None:
        """SIGKILL every child still stopping now, not at its deadline."""
        self._kill_now.set()

    async def _child_life(self, task_status: trio.TaskStatus[Child]) -> None:
        prepared = self._spawner.prepare()
        channel = ChildChannel(prepared.to_child, prepared.from_child)
        child = Child(self, channel)
        self._live.add(child)
        not_ready: ChildCrashed | None = ChildCrashed("the child was stopped before it was ready")
        try:
            async with trio.open_nursery() as relays:
                with child.scope:
                    async with trio.open_nursery() as owner:
                        child.process = await owner.start(
                            partial(prepared.run, child._deliver_cancel)
                        )
                        assert child.process.stdout is not None
                        assert child.process.stderr is not None
                        relays.start_soon(_relay, child, child.process.stdout, logging.INFO)
                        relays.start_soon(_relay, child, child.process.stderr, logging.WARNING)
                        not_ready = await _await_ready(child)
                        if not_ready is None:
                            task_status.started(child)
        finally:
            self._live.discard(child)
            child.exited.set()
            if not child.taken:
                with trio.CancelScope(shield=True):
                    await channel.aclose()
        if not_ready is not None:
            raise not_ready


async def _await_ready(child: Child) -> ChildCrashed | None:
    """None once the child said Ready; else the child is killed and the
    error is returned (raised by the caller outside its nurseries)."""
    with trio.move_on_after(_READY_TIMEOUT_SECONDS) as timeout:
        try:
            messages = await child.channel.receive_batch()
        except ChildCrashed as exc:
            child.kill()
            return exc
    if timeout.cancelled_caught or not messages:
        child.kill()
        return ChildCrashed("the child exited or hung before it was ready")
    if not isinstance(messages[0], ipc.Ready) or len(messages) > 1:
        child.kill()
        return ChildCrashed(f"the child's first message was not ready: {messages!r}")
    return None


async def _relay(child: Child, stream: trio.abc.ReceiveStream, level: int) -> None:
    buffer = b""
    async with stream:
        while data := await stream.receive_some(65536):
            *lines, buffer = (buffer + data).split(b"\n")
            for line in lines:
                _relay_line(child, level, line)
    if buffer:
        _relay_line(child, level, buffer)


def _relay_line(child: Child, level: int, line: bytes) -> None:
    # ``batchId`` for the JSON log format: None while the child is warm.
    extra = {"batchId": child.label if child.taken else None}
    log.log(level, "[batch %s] %s", child.label, line.decode(errors="replace"), extra=extra)
