"""Where batches and jobs live: the ``Store`` interface and ``open_store(url)``.

Design notes
------------
A store URL names its backend by scheme. ``open_store`` looks the scheme up
in ``_OPENERS`` and hands the whole URL to that backend's opener, so a new
backend is one function and one table entry; backends with optional
dependencies import them inside their opener, so ``import engine.store``
never needs them.

``sqlite:///PATH`` follows the SQLAlchemy convention: three slashes then a
relative path (``sqlite:///batchyard.db``), four for an absolute one
(``sqlite:////var/lib/batchyard.db``), and ``sqlite:///:memory:`` for a
private in-memory store. ``redis://[:PASSWORD@]HOST:PORT/DB`` (``rediss://``
for TLS) opens the Redis store; coredis is imported only then.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from engine.errors import ConfigError
from engine.store.base import Store
from engine.store.event_log import EventLog
from engine.store.records import (
    AddResult,
    BatchRecord,
    Claim,
    Complete,
    Counts,
    EngineRecord,
    Fail,
    FollowUp,
    JobPage,
    JobRecord,
    NewJob,
    Outcome,
    Release,
    RunRecord,
    Step,
)
from engine.store.sqlite import open_sqlite_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

__all__ = [
    "AddResult",
    "BatchRecord",
    "Claim",
    "Complete",
    "Counts",
    "EngineRecord",
    "EventLog",
    "Fail",
    "FollowUp",
    "JobPage",
    "JobRecord",
    "NewJob",
    "Outcome",
    "Release",
    "RunRecord",
    "Step",
    "Store",
    "open_store",
]

_SQLITE_PREFIX = "sqlite:///"


def _open_sqlite(url: str) -> AbstractAsyncContextManager[Store]:
    if not url.startswith(_SQLITE_PREFIX):
        raise ConfigError(f"store URL {url!r}: expected sqlite:///PATH (no host)")
    path = url.removeprefix(_SQLITE_PREFIX)
    if not path:
        raise ConfigError(f"store URL {url!r}: the path is empty")
    return open_sqlite_store(path)


def _open_redis(url: str) -> AbstractAsyncContextManager[Store]:
    from engine.store.redis import open_redis_store

    return open_redis_store(url)


_OPENERS: dict[str, Callable[[str], AbstractAsyncContextManager[Store]]] = {
    "sqlite": _open_sqlite,
    "redis": _open_redis,
    "rediss": _open_redis,
}


@contextlib.asynccontextmanager
async def open_store(url: str) -> AsyncIterator[Store]:
    """Open the store that ``url`` names; close it on exit.

    Cancellation: atomic while opening: cancelled, nothing is left open.

    Args:
        url: ``sqlite:///PATH`` (relative), ``sqlite:////PATH`` (absolute),
            ``sqlite:///:memory:``, ``redis://HOST:PORT/DB`` or
            ``rediss://HOST:PORT/DB``.

    Yields:
        The open store.

    Raises:
        ConfigError: the URL is malformed or its scheme is unknown.
        StoreUnavailable: the store cannot be opened.
    """
    scheme, separator, _ = url.partition("://")
    opener = _OPENERS.get(scheme.lower()) if separator else None
    if opener is None:
        known = ", ".join(f"{name}://" for name in _OPENERS)
        raise ConfigError(f"store URL {url!r}: unknown scheme (expected one of {known})")
    async with opener(url) as store:
        yield store
