"""Fixtures shared by the whole suite: settings, test engines and servers,
HTTP clients, free ports, a private Redis.

``fake_engine`` (with ``autojump_clock``) is the way into the engine for unit
tests: on ``MockClock(autojump_threshold=0)`` with children in-process, no
process is started and no assertion depends on the machine's load. End-to-end
tests (``tests/e2e``) take ``server`` and ``client`` (real children, a real
HTTP server, real time with generous bounds). ``redis_url`` is the session's
own ``redis-server`` (``tests.redis_server``: a free loopback port,
persistence off), emptied for each test that takes it.
"""

from __future__ import annotations

import gc
import socket
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.testing

from engine.config.settings import Settings
from engine.core.engine import Engine
from engine.testing import open_fake_engine, open_test_server, settings_for_tests
from tests import redis_server

FakeEngineOpener = Callable[..., AbstractAsyncContextManager[Engine]]


@attrs.frozen(kw_only=True)
class Served:
    """A test engine served over HTTP."""

    engine: Engine
    url: str


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """``settings_for_tests``: a store in ``tmp_path``, the fault types, no rate limit."""
    return settings_for_tests(tmp_path)


@pytest.fixture
def fake_engine() -> FakeEngineOpener:
    """``open_fake_engine(**settings_changes)``, refused off the mock clock.

    pytest-trio installs a clock only for a test that takes the clock
    fixture itself, so each test takes ``autojump_clock`` too; this checks
    that it did.
    """

    @asynccontextmanager
    async def open_on_mock_clock(**changes: Any) -> AsyncIterator[Engine]:
        clock = trio.lowlevel.current_clock()
        assert isinstance(clock, trio.testing.MockClock), "the test must take autojump_clock"
        async with open_fake_engine(**changes) as engine:
            yield engine

    return open_on_mock_clock


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Served]:
    """A test engine with the default test settings, served on a free port."""
    async with open_test_server(tmp_path) as (engine, url):
        yield Served(engine=engine, url=url)


@pytest.fixture
async def client(server: Served) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of ``server``."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        yield client


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (free when asked)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of this session's own ``redis-server``."""
    port = redis_server.free_port()
    with redis_server.running_redis(tmp_path_factory.mktemp("redis"), port):
        yield port


@pytest.fixture
def redis_url(redis_port: int) -> str:
    """This session's Redis, emptied for the test."""
    assert redis_server.redis_command(redis_port, "FLUSHALL") == b"+OK\r\n"
    return f"redis://127.0.0.1:{redis_port}/0"


@pytest.fixture
def failed_connections() -> Iterator[None]:
    """Collects what failed Redis connections left behind (``FAILED_CONNECTS_LEAK``)."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
