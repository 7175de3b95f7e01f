"""Engine processes for the end-to-end cluster tests: ``python -m engine
serve|worker`` on a store, read until ready, killed when the test's block
ends whatever happened in it. Each is a ``faults.engines.EngineProcess``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

from faults.engines import EngineProcess

__all__ = ["EngineProcess", "run_engine", "run_engines"]

_START_SECONDS = 30


def engine_environment(store_url: str, **extra: str) -> dict[str, str]:
    """This environment without the engine's settings, plus the test's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHYARD_", "EMBEDDING_"))}
    for name in ("LEASE_SECONDS", "AUTO_START", "MAX_ACTIVE_BATCHES"):
        env.pop(name, None)
    return env | {
        "BATCHYARD_STORE": store_url,
        "SHUTDOWN_GRACE_SECONDS": "5",
        "EMBEDDING_RATE_LIMIT": "0",
        "EMBEDDING_CONCURRENCY": "2",
        **extra,
    }


@asynccontextmanager
async def run_engines(
    count: int,
    command: str,
    store_url: str,
    *args: str,
    wrapper: Sequence[str] = (),
    **env: str,
) -> AsyncIterator[list[EngineProcess]]:
    """``count`` engines (``serve --port 0`` or ``worker``), started at once
    and ready, until the block ends; those still running then are killed.

    Args:
        count: how many engine processes.
        command: ``serve`` or ``worker``.
        store_url: the store they share.
        args: more command-line arguments (``--config FILE``).
        wrapper: a command that runs the engine (``ip netns exec NAME``).
        env: environment variables set for them.
    """
    argv = [*wrapper, sys.executable, "-m", "engine", command, "--jobs", "engine.testing"]
    argv += [*args, *(["--port", "0"] if command == "serve" else [])]
    engines: list[EngineProcess] = []
    async with trio.open_nursery() as nursery:
        try:
            for _ in range(count):
                process = await trio.lowlevel.open_process(
                    argv,
                    stderr=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    env=engine_environment(store_url, **env),
                )
                engines.append(EngineProcess(process))
                nursery.start_soon(engines[-1].read_stderr)
            with trio.move_on_after(_START_SECONDS):
                for engine in engines:
                    await engine.ready.wait()
            late = [engine.lines[-5:] for engine in engines if not engine.ready.is_set()]
            assert not late, f"engines not ready in {_START_SECONDS}s, their last lines: {late}"
            yield engines
        finally:
            with trio.CancelScope(shield=True):
                await _end(engines)
            nursery.cancel_scope.cancel()


async def _end(engines: list[EngineProcess]) -> None:
    """Kill what still runs, and read what each wrote up to its exit."""
    for engine in engines:
        if engine.process.returncode is None:
            engine.process.kill()
    with trio.move_on_after(5):
        for engine in engines:
            await engine.process.wait()
            await engine.read_all.wait()  # its last lines


@asynccontextmanager
async def run_engine(
    command: str, store_url: str, *args: str, wrapper: Sequence[str] = (), **env: str
) -> AsyncIterator[EngineProcess]:
    """One engine, as ``run_engines`` starts them."""
    async with run_engines(1, command, store_url, *args, wrapper=wrapper, **env) as (engine,):
        yield engine
