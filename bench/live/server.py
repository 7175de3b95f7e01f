"""A served batchyard in a subprocess, owned by the block that opened it.

``open_server`` starts ``bench.live.serve_main`` (the engine behind its
HTTP/WebSocket server, configured by environment variables as ``batchyard
serve`` is), waits for the URL it prints, and on the way out stops it the
way an operator would, with SIGTERM, and waits for it to exit. The server's
stderr and any further stdout go to a log file in the work directory, so a
failed run can be read afterwards.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import attrs
import trio

from bench.cpu import tree_cpu_seconds

__all__ = ["REPO", "LiveServer", "ServerFailed", "open_server"]

#: The repository root: the server subprocess imports ``bench`` from here.
REPO = Path(__file__).resolve().parents[2]

#: A server that is not listening by then is broken, not slow: it starts in
#: well under a second here.
_START_TIMEOUT = 30.0

#: What ``stop`` adds to the server's own grace period before it SIGKILLs.
_STOP_MARGIN = 15.0

_numbers = itertools.count(1)


class ServerFailed(Exception):
    """The server subprocess did not start, or did not stop in time."""


@attrs.frozen(kw_only=True)
class LiveServer:
    """A running server: its base URL, its process and where it logs."""

    url: str
    process: trio.Process
    log_path: Path
    grace_seconds: float

    @property
    def ws_url(self) -> str:
        """The WebSocket base (``ws://HOST:PORT``)."""
        return "ws" + self.url.removeprefix("http")

    def cpu_seconds(self) -> float:
        """CPU seconds the server and its children (batch children, the warm
        spare) have used since it started (``bench.cpu``)."""
        return tree_cpu_seconds(self.process.pid)

    def terminate(self) -> None:
        """Send SIGTERM, as ``kill PID`` or a service manager would."""
        self.process.send_signal(signal.SIGTERM)

    async def wait(self) -> int:
        """The exit code, once the process has exited.

        Cancellation: atomic.
        """
        return await self.process.wait()


async def _drain(stream: trio.abc.ReceiveStream, log: Path) -> None:
    with log.open("ab") as file:
        async for chunk in stream:
            file.write(chunk)
            file.flush()


async def _read_url(stream: trio.abc.ReceiveStream, log: Path) -> str:
    seen = b""
    with trio.move_on_after(_START_TIMEOUT):
        async for chunk in stream:
            seen += chunk
            line, newline, rest = seen.partition(b"\n")
            if newline and line.startswith(b"URL "):
                with log.with_suffix(".out").open("ab") as file:
                    file.write(rest)
                return line.removeprefix(b"URL ").decode().strip()
    path = trio.Path(log)
    tail = (await path.read_text(errors="replace"))[-2000:] if await path.exists() else ""
    raise ServerFailed(f"the server did not start; its log ends:\n{tail}")


@asynccontextmanager
async def open_server(workdir: Path, environment: Mapping[str, str]) -> AsyncIterator[LiveServer]:
    """A served engine configured by ``environment`` (its variables win over
    this process's own), stopped with SIGTERM when the block ends.

    Args:
        workdir: where the server's log goes.
        environment: batchyard variables (``BATCHYARD_STORE``,
            ``EMBEDDING_CONCURRENCY``, ...).

    Cancellation: the server is stopped either way (SIGTERM, then SIGKILL
    after its grace period and a margin).

    Raises:
        ServerFailed: it did not start within 30 s.
    """
    log = workdir / f"server-{next(_numbers)}.log"
    env = {**os.environ, **environment}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    grace = float(environment.get("SHUTDOWN_GRACE_SECONDS", "10"))
    with log.open("wb") as stderr:
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    [sys.executable, "-m", "bench.live.serve_main"],
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    env=env,
                    cwd=REPO,
                    check=False,
                )
            )
            assert process.stdout is not None
            url = await _read_url(process.stdout, log)
            nursery.start_soon(_drain, process.stdout, log.with_suffix(".out"))
            server = LiveServer(url=url, process=process, log_path=log, grace_seconds=grace)
            try:
                yield server
            finally:
                with trio.CancelScope(shield=True):
                    await _stop(server)
                nursery.cancel_scope.cancel()


async def _stop(server: LiveServer) -> None:
    if server.process.returncode is not None:
        return
    server.terminate()
    with trio.move_on_after(server.grace_seconds + _STOP_MARGIN):
        await server.wait()
        return
    server.process.kill()
    await server.wait()
