"""The test harness, shared by ``tests/`` and ``bench/``: settings for tests,
test engines and servers, a failing store, and helpers that build job
requests and collect events.

``open_fake_engine`` is an engine that runs on trio's ``MockClock``: its
children run in this process (``engine.testing.fake_child``), its store is
an in-memory SQLite that works in the Trio thread, and its wall clock is
trio's clock, so due times and backoffs move with the mock clock too.

``FailingStore`` wraps a real store and makes chosen methods fail, as a
full disk or a dropped connection would, until they recover.

No runtime module imports this one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio

from engine.config.settings import RateLimit, Settings
from engine.core.bus import Subscription
from engine.core.engine import Engine, JobRequest
from engine.core.startup import open_engine
from engine.errors import StoreError, StoreUnavailable
from engine.jobs.registry import REGISTRY
from engine.store import Store
from engine.store.sqlite import open_sqlite_store
from engine.testing.fake_child import FakeSpawner, trio_wall_clock
from protocols.events import Event

__all__ = [
    "FailingStore",
    "collect_until",
    "jobs_of",
    "open_fake_engine",
    "open_fake_store",
    "open_test_engine",
    "open_test_server",
    "settings_for_tests",
    "trio_wall_clock",
]


class FailingStore:
    """A store that passes every call through to ``store``, but for the
    methods ``fail`` names, which raise until ``recover`` names them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._failing: dict[str, type[StoreError]] = {}
        self.failed_calls = 0

    def fail(self, *methods: str, error: type[StoreError] = StoreUnavailable) -> None:
        """From now on each of ``methods`` (every method when none is named:
        the store is gone) raises ``error``: by default ``StoreUnavailable``
        (an outage); ``StoreError``, a store that refuses the call."""
        for method in methods or _STORE_METHODS:
            self._failing[method] = error

    def recover(self, *methods: str) -> None:
        """Each of ``methods`` (every one when none is named) works again."""
        for method in methods or list(self._failing):
            self._failing.pop(method, None)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name not in _STORE_METHODS:
            return attribute

        # Whether it fails is decided at each call, so a method looked up
        # before ``fail`` or ``recover`` (a retried step) follows them.
        async def call(*args: Any, **kwargs: Any) -> Any:
            error = self._failing.get(name)
            for part in _PARTS.get(name, ()):
                error = error or self._failing.get(part)
            if error is None:
                return await attribute(*args, **kwargs)
            await trio.lowlevel.checkpoint()
            self.failed_calls += 1
            raise error(f"{name}: the disk is full (simulated)")

        return call


#: A call that does the work of others fails when any of them does.
_PARTS = {"apply_and_claim": ("apply", "claim_jobs")}

#: What ``FailingStore.fail()`` fails: every call of the ``Store`` protocol
#: but ``aclose``.
_STORE_METHODS = tuple(
    name for name in vars(Store) if not name.startswith("_") and name != "aclose"
)


def settings_for_tests(tmp_path: Path, **changes: Any) -> Settings:
    """Settings for a test engine: a store in ``tmp_path``, no rate limit,
    the fault types loaded, a 5 s grace, and whatever ``changes`` say."""
    return _settings(**{"store_url": f"sqlite:///{tmp_path / 'batchyard.db'}", **changes})


def _settings(**changes: Any) -> Settings:
    base: dict[str, Any] = {
        "rate_limit": RateLimit(count=0, per_seconds=60),
        "job_modules": ("engine.testing",),
        "shutdown_grace_seconds": 5.0,
    }
    base.update(changes)
    return Settings(**base)


@asynccontextmanager
async def open_test_engine(
    tmp_path: Path, *, store: Store | None = None, **changes: Any
) -> AsyncIterator[Engine]:
    """An engine on ``settings_for_tests(tmp_path, **changes)``; with
    ``store`` (a ``FailingStore``, say), on that store instead of the
    settings' one (it stays the caller's to close)."""
    async with open_engine(settings_for_tests(tmp_path, **changes), store=store) as engine:
        yield engine


def open_fake_store() -> AbstractAsyncContextManager[Store]:
    """The store of a fake engine: in memory, in the Trio thread, on
    ``trio_wall_clock``."""
    return open_sqlite_store(":memory:", clock=trio_wall_clock, threaded=False)


@asynccontextmanager
async def open_fake_engine(*, store: Store | None = None, **changes: Any) -> AsyncIterator[Engine]:
    """An engine for ``MockClock`` tests, on the settings of
    ``settings_for_tests`` with ``changes``: in-process children
    (``FakeSpawner``), an in-memory store that never leaves the Trio thread
    (or ``store``, say a ``FailingStore`` around ``open_fake_store()``,
    which stays the caller's), and ``trio_wall_clock`` as its wall clock.
    Engines of one cluster share a ``store`` (``open_fake_store``)."""
    settings = _settings(**{"store_url": "sqlite:///:memory:", **changes})
    async with contextlib.AsyncExitStack() as stack:
        if store is None:
            store = await stack.enter_async_context(open_fake_store())
        engine = await stack.enter_async_context(
            open_engine(
                settings, store=store, spawner=FakeSpawner(REGISTRY), clock=trio_wall_clock
            )
        )
        yield engine


def jobs_of(type: str, payloads: Sequence[Any]) -> list[JobRequest]:
    """One job request of ``type`` per payload."""
    return [JobRequest(type=type, payload=payload) for payload in payloads]


async def collect_until(
    subscription: Subscription, last: Callable[[Event], bool] = lambda e: e.event == "done"
) -> list[Event]:
    """Events of ``subscription`` up to and including the first ``last`` one,
    or all of them when the subscription ends first.

    Cancellation: atomic per event; the caller bounds it with a timeout.
    """
    seen: list[Event] = []
    async for event in subscription:
        seen.append(event)
        if last(event):
            return seen
    return seen


@asynccontextmanager
async def open_test_server(
    tmp_path: Path, *, store: Store | None = None, **changes: Any
) -> AsyncIterator[tuple[Engine, str]]:
    """A test engine (``open_test_engine(tmp_path, store=store, **changes)``)
    served over HTTP on a free loopback port: the engine and the server's base
    URL.

    Leaving the block shuts it down as SIGTERM would: the engine drains, event
    clients are closed, then the server stops.
    """
    # Imported here: children import this module for its job types, and
    # must not pay for the HTTP stack at start-up.
    from engine.server.serve import serve_engine

    stop, stop_requests = trio.open_memory_channel[object](1)
    async with (
        open_test_engine(tmp_path, store=store, **changes) as engine,
        trio.open_nursery() as nursery,
    ):
        url = await nursery.start(
            partial(serve_engine, engine, host="127.0.0.1", port=0, stop_requests=stop_requests)
        )
        with stop:
            yield engine, url
