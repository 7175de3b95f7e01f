"""A spawner whose children run the child program in this process.

Design notes
------------
``FakeSpawner`` is the supervisor's ``Spawner`` for tests: each child is the
real child program (``engine.child.program.serve_child``) in a task of its
own, speaking over memory streams instead of pipes. No process is started
and nothing waits on the wall clock, so an engine with a fake spawner runs
on trio's ``MockClock``.

What a process is, the fake models:

* its exit code: what ``serve_child`` returns, once the program ends;
* independence: the child's task is shielded, so cancelling the task that
  runs it (the supervisor stopping it) does not stop it; as with
  ``trio.run_process``, ``deliver_cancel`` runs and the exit is awaited;
* a crash: ``crash(code)`` ends it at once with that code, as ``os._exit``
  does; nothing it had not written yet reaches the engine;
* SIGKILL: ``kill()`` ends it at once with code ``-9``;
* its pipes: once it exited, the engine reads EOF and its writes fail.

The fault job types that act on the process itself (``engine.testing.faults``)
get in-process twins bound to the child that runs them: ``crash`` calls
``crash(exitCode)``, ``hang`` is deaf to cancellation and to every message
(what the engine sends meanwhile stays in the pipe, unread, as with a
blocked loop; a ``Ping`` gets no ``Pong``) until ``seconds`` pass or the
child is killed, and ``garble`` writes a line that is not a message onto the
child's IPC pipe.

Its wall clock, what it reports as a job's start, is ``trio_wall_clock``:
trio's clock, as a fake engine's is, so the two agree on a mock clock.

Handlers that are plain ``def`` functions run in a worker thread; on a mock
clock with autojump, time moves on while a thread works, so tests on a mock
clock use ``async def`` handlers.
"""

from __future__ import annotations

import itertools
import signal
from typing import Any

import trio
import trio.testing

from engine.child.program import serve_child
from engine.jobs.registry import JobContext, JobRegistry
from engine.supervisor.spawner import ChildProcess, DeliverCancel

__all__ = ["FakeChild", "FakeSpawner", "trio_wall_clock"]

#: The wall-clock reading of a fake engine at trio time 0. Any fixed value
#: works; a recent one keeps timestamps looking like timestamps.
_FAKE_EPOCH = 1_700_000_000.0

#: Fake process ids, far above any real one so a log line cannot confuse them.
_PIDS = itertools.count(10_000_000)


def trio_wall_clock() -> float:
    """Wall-clock seconds that follow trio's clock (a fake engine's clock)."""
    return _FAKE_EPOCH + trio.current_time()


class FakeSpawner:
    """Makes ``FakeChild`` children that run ``registry``'s job types.

    Args:
        registry: the job types the children run (the fault types that act
            on the process are replaced by their in-process twins).
    """

    def __init__(self, registry: JobRegistry) -> None:
        self._registry = registry
        #: Every child made, oldest first.
        self.children: list[FakeChild] = []

    def prepare(self) -> FakeChild:
        """A new child, its streams open; ``run`` starts it."""
        child = FakeChild(self._registry)
        self.children.append(child)
        return child


class FakeChild:
    """One in-process child: both the prepared child and its process."""

    def __init__(self, registry: JobRegistry) -> None:
        self.pid = next(_PIDS)
        self.returncode: int | None = None
        self.to_child = trio.testing.MemorySendStream(
            send_all_hook=self._send_in, close_hook=self._close_in
        )
        self._inbound = trio.testing.MemoryReceiveStream()
        self.from_child = trio.testing.MemoryReceiveStream()
        self.stdout = trio.testing.MemoryReceiveStream()
        self.stderr = trio.testing.MemoryReceiveStream()
        self._registry = self._twin_faults(registry)
        self._life = trio.CancelScope(shield=True)
        self._killed = trio.Event()
        self._exited = trio.Event()
        self._hangs = 0  # hang jobs running: the child reads nothing meanwhile

    # --- the process ---------------------------------------------------------

    def crash(self, code: int) -> None:
        """End the child now with exit code ``code`` (``os._exit``)."""
        self._end(code)

    def kill(self) -> None:
        """End the child now, as SIGKILL does (exit code ``-9``)."""
        self._end(-signal.SIGKILL)
        self._killed.set()

    def _end(self, code: int) -> None:
        if self.returncode is not None:
            return
        self.returncode = code
        self._life.cancel()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for stream in (self.from_child, self.stdout, self.stderr):
            stream.put_eof()
        self._exited.set()

    async def run(
        self, deliver_cancel: DeliverCancel, *, task_status: trio.TaskStatus[ChildProcess]
    ) -> None:
        """Start the child program; return once it exited (see
        ``PreparedChild.run``).

        Cancellation: ``deliver_cancel(self)`` runs, shielded, and the exit is
        awaited, then ``Cancelled`` propagates.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._live)
            task_status.started(self)
            try:
                await self._exited.wait()
            except BaseException:
                with trio.CancelScope(shield=True):
                    async with trio.open_nursery() as delivery:
                        delivery.start_soon(deliver_cancel, self)
                        await self._exited.wait()
                        delivery.cancel_scope.cancel()
                raise

    async def _live(self) -> None:
        with self._life:
            code = await serve_child(self._inbound, self._write, self._registry, trio_wall_clock)
        if self.returncode is None:
            self.returncode = code
            self._close_pipes()

    # --- the pipes -----------------------------------------------------------

    async def _send_in(self) -> None:
        """Moves what the engine sent to the child's end, as a pipe would; a
        pipe whose reader exited is broken; a hung child reads nothing."""
        if self.returncode is not None:
            raise trio.BrokenResourceError("the child has exited")
        if not self._hangs:
            trio.testing.memory_stream_pump(self.to_child, self._inbound)

    def _close_in(self) -> None:
        """The engine closed its end: the child reads EOF."""
        if self.returncode is None:
            trio.testing.memory_stream_pump(self.to_child, self._inbound)

    def _write(self, data: bytes) -> None:
        """The child's writes to the engine: whole, at once; an ``OSError``
        once the engine's end is closed or the child is gone."""
        if self.returncode is not None:
            raise BrokenPipeError("the child has exited")
        try:
            self.from_child.put_data(data)
        except trio.ClosedResourceError as exc:
            raise BrokenPipeError("the engine closed its end") from exc

    # --- fault job types -------------------------------------------------------

    def _twin_faults(self, base: JobRegistry) -> JobRegistry:
        registry = JobRegistry()
        for name in base.names():
            registry.register(name, base.get(name).handler)
        registry.register("crash", self._crash_job, replace=True)
        registry.register("hang", self._hang_job, replace=True)
        registry.register("garble", self._garble_job, replace=True)
        return registry

    async def _crash_job(self, payload: Any, ctx: JobContext) -> None:
        code = payload.get("exitCode", 3) if isinstance(payload, dict) else 3
        self.crash(code if isinstance(code, int) else 3)
        await trio.sleep_forever()

    async def _hang_job(self, payload: Any, ctx: JobContext) -> None:
        seconds = payload.get("seconds", 3600) if isinstance(payload, dict) else 3600
        self._hangs += 1
        try:
            with trio.CancelScope(shield=True), trio.move_on_after(float(seconds)):
                await self._killed.wait()
        finally:
            self._hangs -= 1
        if not self._hangs and self.returncode is None:
            trio.testing.memory_stream_pump(self.to_child, self._inbound)

    async def _garble_job(self, payload: Any, ctx: JobContext) -> None:
        self._write(b"this is not a message\n")
        await trio.sleep_forever()
