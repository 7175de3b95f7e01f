"""Serving: the engine and hypercorn's Trio worker in one nursery, and shutdown.

Design notes
------------
This is the only module that imports hypercorn. ``serve`` opens the engine
and serves it until SIGINT or SIGTERM; ``serve_engine`` serves an engine
that is already open until its ``stop_requests`` say so (tests feed it from
a memory channel instead of signals).

Shutdown runs in the contract's order (the engine's part is
``engine.core.signals``, shared with ``batchyard worker``):

1. the first stop request calls ``engine.shutdown()``: work-adding calls
   answer 503, children finish what they hold within the grace period and
   are SIGKILLed after it, while the server keeps answering and clients keep
   receiving the runs' final events;
2. a second request calls ``engine.shutdown()`` again, which ends the wait
   at once;
3. ``engine.end_subscriptions()``: every subscriber drains what it holds, then
   WebSocket clients are closed with 1001 and SSE responses end;
4. hypercorn stops accepting, closes idle keep-alive connections and gives
   the rest ``_HTTP_GRACE_SECONDS``; the app's lifespan ends last.

A client that stopped reading can hold a write of hypercorn's past any
cancellation; when hypercorn has not finished shortly after its grace, the
connections still open on the server's address are shut down
(``engine.server.stragglers``).

A host that is not loopback is refused without a token (unless the operator
says ``insecure_no_auth``): the API starts processes on this machine.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import cast
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.typing import ASGIFramework
from starlette.applications import Starlette

from engine.config.settings import Settings
from engine.core.engine import Engine
from engine.core.signals import drain_on_request, single_engine_error, sole_error, stop_signals
from engine.core.startup import open_engine
from engine.errors import ConfigError
from engine.server.app import create_app
from engine.server.collector import serving_collector
from engine.server.stragglers import shut_down_connections
from protocols.control import MAX_CLIENT_MESSAGE_BYTES

__all__ = ["check_exposure", "serve", "serve_engine"]

log = logging.getLogger("batchyard.server")

#: hypercorn's error log. Its INFO lines ("Running on ...") repeat the
#: start-up line of ``serve_engine``, so only warnings and errors pass.
_HTTP_LOG = logging.getLogger("batchyard.http")

#: Once the bus is closed every event client is told at once, so what is
#: left is requests in flight, each a store read or two: milliseconds. The
#: contract bounds the whole stop by the children's grace plus one second,
#: and this stage comes after the children's, so it gets half a second
#: before hypercorn cancels what is left.
_HTTP_GRACE_SECONDS = 0.5

#: hypercorn cancels what is left after its grace; a task stuck writing to a
#: client that stopped reading cannot be cancelled (``stragglers``), so this
#: long after the grace its socket is shut down instead. Together with the
#: grace it leaves a quarter of a second of the contract's one for the
#: engine to close and the process to exit.
_FORCE_AFTER_GRACE_SECONDS = 0.25


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
    config.websocket_max_message_size = MAX_CLIENT_MESSAGE_BYTES
    return config


class _HttpServer:
    """hypercorn serving one app: started, then stopped within a bound."""

    def __init__(self, app: Starlette, config: Config) -> None:
        self._app = app
        self._config = config
        self._stop = trio.Event()
        self._finished = trio.Event()
        self._binds: list[str] = []

    async def _run(self, task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await hypercorn_serve(
                # Starlette types ASGI messages as plain dicts, hypercorn as TypedDicts.
                cast(ASGIFramework, self._app),
                self._config,
                shutdown_trigger=self._stop.wait,
                task_status=task_status,
            )
        finally:
            self._finished.set()

    async def start(self, nursery: trio.Nursery) -> str:
        """Listen and serve in ``nursery``; the URL.

        Cancellation: may have partially happened (it may be listening).

        Raises:
            ConfigError: the address cannot be listened on.
        """
        try:
            binds: list[str] = await nursery.start(self._run)
        except (OSError, BaseExceptionGroup) as exc:
            sole = sole_error(exc)
            if not isinstance(sole, OSError):
                raise
            bind = self._config.bind[0]
            raise ConfigError(f"cannot listen on {bind}: {sole.strerror or sole}") from exc
        self._binds = binds
        return binds[0]

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, and return once
        hypercorn has stopped, forcing connections closed if it must.

        Cancellation: may have partially happened (it is stopping).
        """
        self._stop.set()
        with trio.move_on_after(_HTTP_GRACE_SECONDS + _FORCE_AFTER_GRACE_SECONDS):
            await self._finished.wait()
            return
        listening = [urlsplit(bind) for bind in self._binds]
        stuck = shut_down_connections((url.hostname or "", url.port or 0) for url in listening)
        log.warning("shut down %d connections still open after the grace", stuck)
        await self._finished.wait()


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
    http = _HttpServer(create_app(engine), _config(host, port))
    with serving_collector():
        await _serve_until_stopped(engine, http, stop_requests, task_status)
    log.info("stopped")


async def _serve_until_stopped(
    engine: Engine,
    http: _HttpServer,
    stop_requests: AsyncIterator[object],
    task_status: trio.TaskStatus[str],
) -> None:
    async with trio.open_nursery() as nursery:
        url = await http.start(nursery)
        log.info(
            "batchyard %s listening on %s; %s",
            version("batchyard"),
            url,
            engine.settings.describe(),
        )
        task_status.started(url)
        await drain_on_request(engine, stop_requests)
        engine.end_subscriptions()
        await http.stop()


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
    with stop_signals() as signals, single_engine_error():
        async with open_engine(settings) as engine:
            await serve_engine(
                engine, host=host, port=port, stop_requests=signals, task_status=task_status
            )
