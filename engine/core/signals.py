"""Stopping an engine process on request: SIGINT / SIGTERM, then drain.

Design notes
------------
``batchyard serve`` and ``batchyard worker`` stop the same way, so the
order lives here, apart from the HTTP stack: the first stop request calls
``engine.shutdown()`` (no new work, children get the grace period, runs are
handed over), a second one ends the grace at once. ``stop_signals`` is the
request stream a process uses; tests feed ``drain_on_request`` from a
memory channel instead.

A failure to start surfaces through nested nurseries as an exception
group; ``single_engine_error`` turns a group of one ``EngineError`` back
into that error, so a command can say "cannot start: why" on one line.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import trio

from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.core.engine import Engine

__all__ = ["drain_on_request", "single_engine_error", "sole_error", "stop_signals"]

log = logging.getLogger("batchyard.engine")


def stop_signals() -> contextlib.AbstractContextManager[AsyncIterator[object]]:
    """SIGINT and SIGTERM as a stream of stop requests (a context manager:
    the handlers are installed while it is open)."""
    return trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)


async def drain_on_request(engine: Engine, stop_requests: AsyncIterator[object]) -> None:
    """Wait for the first stop request, then shut ``engine`` down; a further
    request ends the children's grace period at once. The end of
    ``stop_requests`` counts as a request.

    Cancellation: may have partially happened (the shutdown may be under way).
    """
    with contextlib.suppress(StopAsyncIteration):
        await anext(stop_requests)
    log.info(
        "shutting down: running children get %gs to finish",
        engine.settings.shutdown_grace_seconds,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_hurry, engine, stop_requests)
        await engine.shutdown()
        nursery.cancel_scope.cancel()


async def _hurry(engine: Engine, stop_requests: AsyncIterator[object]) -> None:
    async for _ in stop_requests:
        log.warning("second stop request: killing children now")
        await engine.shutdown()


def sole_error(exc: BaseException) -> BaseException:
    """``exc``, or the one error inside it when it is a group of exactly one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@contextlib.contextmanager
def single_engine_error() -> Iterator[None]:
    """Re-raise a group holding a single ``EngineError`` as that error."""
    try:
        yield
    except BaseExceptionGroup as group:
        sole = sole_error(group)
        if not isinstance(sole, EngineError):
            raise
        raise sole from None
