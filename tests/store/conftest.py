"""Fixtures of the store tests: one ``store`` per backend, and a private Redis.

The ``store`` fixture is parametrised over every backend, so each contract
test runs against SQLite and Redis alike. Redis tests get a ``redis-server``
of their own (Debian's binary), started once per session on a free loopback
port with persistence off, and emptied before each test; the server on the
usual port 6379, if any, is never touched. Without ``redis-server`` the Redis
tests are skipped, except under ``CI=true``, where they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from engine.store import Store
from engine.store.sqlite import open_sqlite_store
from tests.store.helpers import FakeClock

REDIS_SERVER = "redis-server"
_STARTUP_SECONDS = 10.0

#: An opener of the backend under test: clock → a store on the shared data.
Opener = Callable[[FakeClock], AbstractAsyncContextManager[Store]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_command(port: int, *words: str) -> bytes:
    """Send one command to the server on ``port``; its raw reply line."""
    command = "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
    with socket.create_connection(("127.0.0.1", port), timeout=_STARTUP_SECONDS) as sock:
        sock.sendall(f"*{len(words)}\r\n{command}".encode())
        return sock.recv(1024)


@contextlib.contextmanager
def running_redis(
    workdir: Path, port: int, *, persist: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``redis-server`` on ``127.0.0.1:port``, answering pings; killed on exit.

    With ``persist``, every write is in its append-only file in ``workdir``
    before Redis answers it, so a server started again on the same
    ``workdir`` has whatever the last one acknowledged, even after SIGKILL.
    """
    binary = shutil.which(REDIS_SERVER) or "/usr/bin/redis-server"
    if not Path(binary).exists():
        message = f"{REDIS_SERVER} is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += (
        ["--appendonly", "yes", "--appendfsync", "always"] if persist else ["--appendonly", "no"]
    )
    args += ["--dir", str(workdir)]
    server = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + _STARTUP_SECONDS
        while True:
            with contextlib.suppress(OSError):
                if redis_command(port, "PING") == b"+PONG\r\n":
                    break
            assert server.poll() is None, f"{REDIS_SERVER} exited with {server.returncode}"
            assert time.monotonic() < deadline, f"{REDIS_SERVER} did not answer on {port}"
            time.sleep(0.02)
        yield server
    finally:
        server.kill()
        server.wait()


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of this session's own ``redis-server``."""
    port = free_port()
    with running_redis(tmp_path_factory.mktemp("redis"), port):
        yield port


@pytest.fixture
def redis_url(redis_port: int) -> str:
    """This session's Redis, emptied for the test."""
    assert redis_command(redis_port, "FLUSHALL") == b"+OK\r\n"
    return f"redis://127.0.0.1:{redis_port}/0"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "store.db")


@pytest.fixture(params=["sqlite", "redis"])
def open_backend(request: pytest.FixtureRequest) -> Opener:
    """Opens stores of one backend, all on the same data."""
    if request.param == "sqlite":
        path: str = request.getfixturevalue("db_path")
        return lambda clock: open_sqlite_store(path, clock=clock)
    from engine.store.redis import open_redis_store

    url: str = request.getfixturevalue("redis_url")
    return lambda clock: open_redis_store(url, clock=clock)


@pytest.fixture
async def store(open_backend: Opener, clock: FakeClock) -> AsyncIterator[Store]:
    async with open_backend(clock) as store:
        yield store
