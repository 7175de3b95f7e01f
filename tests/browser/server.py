"""A real ``batchyard serve`` for the browser tests: a subprocess on a free
loopback port, read until it listens, stopped when the block ends."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.e2e.processes import engine_environment

__all__ = ["Server", "serve"]

_READY = re.compile(r"listening on (http://\S+?);")
_START_SECONDS = 30
_ROOT = Path(__file__).resolve().parents[2]


class Server:
    """A running server: its ``url``, what it wrote, an HTTP ``client``."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            match = _READY.search(line)
            if match:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    def wait_ready(self) -> None:
        assert self._ready.wait(_START_SECONDS) and self.url, (
            f"server not listening in {_START_SECONDS}s: {self.lines[-5:]}"
        )

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


@contextmanager
def serve(store: Path, **env: str) -> Iterator[Server]:
    """``python -m engine serve --port 0`` on a SQLite store at ``store``,
    with the fault types and ``env``; SIGTERM, then SIGKILL, at the end."""
    argv = [sys.executable, "-m", "engine", "serve", "--port", "0"]
    argv += ["--jobs", "engine.testing", "--jobs", "tests.browser.jobs"]
    # The test's own job types are imported by the engine and its children.
    env.setdefault("PYTHONPATH", str(_ROOT))
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=engine_environment(f"sqlite:///{store}", **env),
    )
    server = Server(process)
    try:
        server.wait_ready()
        yield server
    finally:
        process.terminate()
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
        process.wait()
        server._reader.join(5)
        assert process.stderr is not None
        process.stderr.close()
