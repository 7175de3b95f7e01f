"""Fixtures of the store tests: one ``store`` per backend.

The ``store`` fixture is parametrised over every backend, so each contract
test runs against SQLite and Redis alike. Redis tests use the session's
private ``redis-server`` (``redis_url`` in ``tests/conftest.py``), emptied
before each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from engine.store import Store
from engine.store.sqlite import open_sqlite_store
from tests.store.helpers import FakeClock

#: An opener of the backend under test: clock → a store on the shared data.
Opener = Callable[[FakeClock], AbstractAsyncContextManager[Store]]


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
