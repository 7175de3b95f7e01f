"""A private ``redis-server`` for a scenario: on a free loopback port (and
any other address of this host it is asked to bind), answering pings,
killed when the block ends. The server on the usual port is never touched."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["RedisServer", "free_port", "redis_command"]

_STARTUP_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_command(port: int, *words: str) -> bytes:
    """One command to the server on ``port``; its raw reply."""
    command = "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
    with socket.create_connection(("127.0.0.1", port), timeout=_STARTUP_SECONDS) as sock:
        sock.sendall(f"*{len(words)}\r\n{command}".encode())
        return sock.recv(65536)


class RedisServer:
    """A persistent ``redis-server`` on ``port`` whose data lives in
    ``workdir`` (every write in its append-only file before it is answered),
    so it can be killed and started again without losing an acknowledged
    write."""

    def __init__(self, workdir: Path, port: int, also_bind: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._also_bind = list(also_bind)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        args = ["--port", str(self.port), "--bind", "127.0.0.1", *self._also_bind]
        args += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        args += ["--protected-mode", "no" if self._also_bind else "yes"]
        args += ["--dir", str(self.workdir)]
        self._process = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + _STARTUP_SECONDS
        while True:
            with contextlib.suppress(OSError):
                if redis_command(self.port, "PING") == b"+PONG\r\n":
                    return
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    @classmethod
    @contextlib.contextmanager
    def running(cls, workdir: Path, also_bind: Sequence[str] = ()) -> Iterator[RedisServer]:
        """A started server on a free port, killed on exit."""
        workdir.mkdir(exist_ok=True)
        server = cls(workdir, free_port(), also_bind)
        server.start()
        try:
            yield server
        finally:
            server.kill()
