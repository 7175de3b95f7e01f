"""Engine processes of a scenario: ``python -m engine serve|worker`` with
the fault job types, started on a store and read until ready; every one still
running when the scenario's block ends is killed.

Also what the runner checks after each scenario: the processes this one
started that are still alive (``leftovers``), and how to end them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager

import psutil
import trio

__all__ = ["EngineProcess", "Engines", "alive", "end_leftovers", "leftovers", "open_engines"]

_READY = re.compile(r"listening on (http://\S+?);|worker (engine-\S+) on ")
_START_SECONDS = 60.0

#: Settings every engine of the suite gets unless a scenario says otherwise:
#: no rate limit, no status lines, a short grace.
_DEFAULTS = {
    "EMBEDDING_RATE_LIMIT": "0",
    "EMBEDDING_CONCURRENCY": "2",
    "SHUTDOWN_GRACE_SECONDS": "2",
    "STATUS_LOG_SECONDS": "0",
}


class EngineProcess:
    """One engine process and the lines it wrote to stderr; ``url`` once its
    server listens, ``engine_id`` once a worker runs."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.url = ""
        self.engine_id = ""
        self.ready = trio.Event()
        self.read_all = trio.Event()

    @property
    def pid(self) -> int:
        return self.process.pid

    def children(self) -> list[psutil.Process]:
        """Its child processes (the batches' children and warm spares)."""
        try:
            return list(psutil.Process(self.pid).children())
        except psutil.NoSuchProcess:
            return []

    async def has_no_child(self) -> bool:
        """Whether none of its children runs (for ``poll_until``)."""
        await trio.lowlevel.checkpoint()
        return not any(alive(child) for child in self.children())

    async def read_stderr(self) -> None:
        assert self.process.stderr is not None
        buffer = b""
        async for chunk in self.process.stderr:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self.lines.append(line.decode(errors="replace"))
                match = _READY.search(self.lines[-1])
                if match and not self.ready.is_set():
                    self.url = match.group(1) or ""
                    self.engine_id = match.group(2) or ""
                    self.ready.set()
        self.read_all.set()

    async def signal_and_wait(self, signum: int) -> int:
        """Send ``signum``; the exit code once it exited."""
        if self.process.returncode is None:
            self.process.send_signal(signum)
        return await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM (a graceful shutdown); the exit code."""
        return await self.signal_and_wait(signal.SIGTERM)

    async def kill(self) -> None:
        """SIGKILL, and wait until it is gone."""
        await self.signal_and_wait(signal.SIGKILL)


async def _then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _environment(store_url: str, extra: dict[str, str]) -> dict[str, str]:
    """This environment without any engine setting, plus the scenario's."""
    names = ("LEASE_SECONDS", "AUTO_START", "MAX_ACTIVE_BATCHES", "WARM_CHILDREN")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BATCHYARD_", "EMBEDDING_", "JOB_", "BATCH_")) and key not in names
    }
    return env | _DEFAULTS | {"BATCHYARD_STORE": store_url} | extra


class Engines:
    """Starts engines in its nursery and ends them with the block."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.started: list[EngineProcess] = []

    async def start(
        self,
        command: str,
        store_url: str,
        *args: str,
        wrapper: Sequence[str] = (),
        jobs: Sequence[str] = ("engine.testing",),
        **env: str,
    ) -> EngineProcess:
        """An engine (``serve`` on a free loopback port, or ``worker``),
        ready; ``RuntimeError`` with its last lines when it exits first or
        is not ready within a minute."""
        argv = [*wrapper, sys.executable, "-m", "engine", command]
        for module in jobs:
            argv += ["--jobs", module]
        argv += [*args, *(["--port", "0"] if command == "serve" else [])]
        process = await trio.lowlevel.open_process(
            argv,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=_environment(store_url, env),
        )
        engine = EngineProcess(process)
        self.started.append(engine)
        self._nursery.start_soon(engine.read_stderr)
        with trio.move_on_after(_START_SECONDS):
            async with trio.open_nursery() as waiting:
                for event in (engine.ready, engine.read_all):  # ready, or it exited
                    waiting.start_soon(_then_cancel, event, waiting.cancel_scope)
        if not engine.ready.is_set():
            raise RuntimeError(f"engine not ready: {engine.lines[-5:]}")
        return engine

    async def end(self) -> None:
        """Kill each engine still running, and read its last lines."""
        for engine in self.started:
            if engine.process.returncode is None:
                engine.process.kill()
        with trio.move_on_after(5):
            for engine in self.started:
                await engine.process.wait()
                await engine.read_all.wait()


@asynccontextmanager
async def open_engines() -> AsyncIterator[Engines]:
    """An ``Engines``; the engines it started are killed when the block ends."""
    async with trio.open_nursery() as nursery:
        engines = Engines(nursery)
        try:
            yield engines
        finally:
            with trio.CancelScope(shield=True):
                await engines.end()
            nursery.cancel_scope.cancel()


def alive(process: psutil.Process) -> bool:
    """Whether ``process`` runs (an exited orphan may stay a zombie a while)."""
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def leftovers(existing: Collection[int] = ()) -> list[psutil.Process]:
    """Every live process this one started, directly or not, but those of
    ``existing`` (pids that were there before)."""
    return [
        p for p in psutil.Process().children(recursive=True) if p.pid not in existing and alive(p)
    ]


async def end_leftovers(wait: float = 3.0, *, existing: Collection[int] = ()) -> list[str]:
    """Wait up to ``wait`` seconds for this process's descendants, but
    those of ``existing``, to exit, then kill those left; a description of
    each that had to be killed."""
    with trio.move_on_after(wait):
        while leftovers(existing):  # noqa: ASYNC110 - other processes' state
            await trio.sleep(0.05)
    killed = []
    for process in leftovers(existing):
        try:
            killed.append(f"{process.pid} {' '.join(process.cmdline())[:80]}")
            process.kill()
        except psutil.NoSuchProcess:
            continue
    return killed
