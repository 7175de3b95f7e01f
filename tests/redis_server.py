"""A private ``redis-server`` for tests: started on a free loopback port,
answering pings, killed on exit.

Debian's binary; without it the tests that need one are skipped, except
under ``CI=true``, where they fail instead. The server on the usual port
6379, if any, is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from faults.redis import free_port, redis_command

__all__ = ["FAILED_CONNECTS_LEAK", "free_port", "redis_command", "running_redis"]

REDIS_SERVER = "redis-server"

#: coredis 6.9 does not close a connection's internal anyio memory streams
#: when connecting fails, so they warn (``ResourceWarning``) when collected,
#: which ``filterwarnings = error`` would turn into a failure. Tests that make
#: connections fail allow it, and take the ``failed_connections`` fixture
#: (``tests/conftest.py``), which collects the leftovers before they end.
FAILED_CONNECTS_LEAK = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function MemoryObject:pytest.PytestUnraisableExceptionWarning"
)
_STARTUP_SECONDS = 10.0


@contextlib.contextmanager
def running_redis(
    workdir: Path, port: int, *, persistent: bool = False, also_bind: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``redis-server`` on ``127.0.0.1:port`` (and on the ``also_bind``
    addresses of this host), answering pings; killed on exit.

    With ``persistent`` every write is in its append-only file in ``workdir``
    before it is answered, so a server killed and started again on the same
    ``workdir`` has every write it acknowledged.
    """
    binary = shutil.which(REDIS_SERVER) or "/usr/bin/redis-server"
    if not Path(binary).exists():
        message = f"{REDIS_SERVER} is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    durability = ["--appendonly", "yes", "--appendfsync", "always"] if persistent else []
    args = ["--port", str(port), "--bind", "127.0.0.1", *also_bind, "--save", ""]
    args += durability or ["--appendonly", "no"]
    # Protected mode answers only loopback clients; the other addresses are
    # this host's own (a veth pair to a network namespace of a test).
    args += ["--protected-mode", "no"] if also_bind else []
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
