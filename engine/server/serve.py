"""Serving: the engine and hypercorn's Trio worker in one nursery, and shutdown.

Design notes
------------
This is the only module that imports hypercorn. ``serve`` opens the engine
and serves it until SIGINT or SIGTERM; ``serve_engine`` serves an engine
that is already open until its ``stop_requests`` say so (tests feed it from
a memory channel instead of signals).

Shutdown runs in the contract's order:

1. the first stop request calls ``engine.shutdown()``: work-adding calls
   answer 503, children finish what they hold within the grace period and
   are SIGKILLed after it, while the server keeps answering and clients keep
   receiving the runs' final events;
2. a second request calls ``engine.shutdown()`` again, which ends the wait
   at once;
3. ``engine.bus.close()``: every subscriber drains what it holds, then
   WebSocket clients are closed with 1001 and SSE responses end;
4. hypercorn stops accepting, closes idle keep-alive connections and gives
   the rest ``_HTTP_GRACE_SECONDS``; the app's lifespan ends last.

A host that is not loopback is refused without a token (unless the operator
says ``insecure_no_auth``): the API starts processes on this machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from functools import partial
from importlib.metadata import version
from typing import cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework
from starlette.applications import Starlette

from engine.engine import Engine, open_engine
from engine.errors import ConfigError, EngineError
from engine.server.app import create_app
from engine.settings import Settings

__all__ = ["check_exposure", "serve", "serve_engine"]

log = logging.getLogger("batchyard.server")

#: hypercorn's error log. Its INFO lines ("Running on ...") repeat the
#: start-up line of ``serve_engine``, so only warnings and errors pass.
_HTTP_LOG = logging.getLogger("batchyard.http")

#: Once the bus is closed every event client is told at once, so what is
#: left is requests in flight; they get this long before hypercorn cancels.
_HTTP_GRACE_SECONDS = 5.0

#: The largest WebSocket message a client may send; control messages are
#: tiny, so anything near this is not one.
_MAX_CLIENT_MESSAGE_BYTES = 64 * 1024


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, settings: Settings, *, insecure_no_auth: bool) -> None:
    """Refuse to serve a host beyond loopback without a token.

    Raises:
        ConfigError: ``host`` is not loopback, no token is set, and
            ``insecure_no_auth`` is False.
    """
    if settings.token is None and not insecure_no_auth and not _is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} without a token: anyone who reaches it could run "
            "jobs on this machine; set BATCHYARD_TOKEN, listen on 127.0.0.1, "
            "or pass --insecure-no-auth"
        )


def _config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"]
    _HTTP_LOG.setLevel(logging.WARNING)
    config.errorlog = _HTTP_LOG
    config.accesslog = None
    config.graceful_timeout = _HTTP_GRACE_SECONDS
    config.websocket_max_message_size = _MAX_CLIENT_MESSAGE_BYTES
    return config


def _sole_error(exc: BaseException) -> BaseException:
    """``exc``, or the one error inside it when it is a group of exactly one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@contextlib.contextmanager
def _single_engine_error() -> Iterator[None]:
    # A failure to start surfaces through nested nurseries as an exception
    # group; a caller that reports "cannot start: why" wants the one error.
    try:
        yield
    except BaseExceptionGroup as group:
        sole = _sole_error(group)
        if not isinstance(sole, EngineError):
            raise
        raise sole from None


async def _start_http(
    nursery: trio.Nursery, app: Starlette, config: Config, stopped: trio.Event
) -> str:
    try:
        binds: list[str] = await nursery.start(
            # Starlette types ASGI messages as plain dicts, hypercorn as TypedDicts.
            partial(
                hypercorn_serve, cast(ASGIFramework, app), config, shutdown_trigger=stopped.wait
            )
        )
    except (OSError, BaseExceptionGroup) as exc:
        sole = _sole_error(exc)
        if not isinstance(sole, OSError):
            raise
        raise ConfigError(f"cannot listen on {config.bind[0]}: {sole.strerror or sole}") from exc
    return binds[0]


async def _drain(engine: Engine, stop_requests: AsyncIterator[object]) -> None:
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


async def serve_engine(
    engine: Engine,
    *,
    host: str,
    port: int,
    stop_requests: AsyncIterator[object],
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``engine`` over HTTP until a stop request, then shut it down.

    Args:
        engine: an open engine; it is shut down (not closed) on the way out.
        host: the address to listen on.
        port: the port; 0 picks a free one.
        stop_requests: the first item starts the shutdown, a second one ends
            the children's grace period at once; its end counts as a request.
        task_status: gets the URL the server listens on (``http://HOST:PORT``).

    Cancellation: may have partially happened; cancelling skips the graceful
    order (the engine's own exit still gives children their grace period).

    Raises:
        ConfigError: the address cannot be listened on.
    """
    app = create_app(engine)
    stopped = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await _start_http(nursery, app, _config(host, port), stopped)
        log.info(
            "batchyard %s listening on %s; %s",
            version("batchyard"),
            url,
            engine.settings.describe(),
        )
        task_status.started(url)
        await _drain(engine, stop_requests)
        engine.bus.close()
        stopped.set()
    log.info("stopped")


async def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    insecure_no_auth: bool = False,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the engine and serve it until SIGINT or SIGTERM; returns when all stopped.

    Args:
        settings: the engine's settings (store, limits, token).
        host: the address to listen on; beyond loopback a token is required.
        port: the port; 0 picks a free one.
        insecure_no_auth: allow a host beyond loopback without a token.
        task_status: gets the URL the server listens on.

    Cancellation: may have partially happened; children still get their
    grace period as the engine closes.

    Raises:
        ConfigError: the host needs a token, a setting is unusable, or the
            address cannot be listened on.
        JobError: a job module cannot be imported.
        StoreUnavailable: the store cannot be opened.
    """
    check_exposure(host, settings, insecure_no_auth=insecure_no_auth)
    with (
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
        _single_engine_error(),
    ):
        async with open_engine(settings) as engine:
            await serve_engine(
                engine, host=host, port=port, stop_requests=signals, task_status=task_status
            )
