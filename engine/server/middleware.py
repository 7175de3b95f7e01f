"""ASGI middleware of the API: the catch-all, bearer-token auth, the body limit.

Design notes
------------
All three are plain ASGI callables (no ``BaseHTTPMiddleware``, which runs the
route in another task and buffers streaming responses), installed outermost
first: ``CatchAll`` → ``RequireToken`` → ``LimitBody`` → routes.

``CatchAll`` sits inside Starlette's own ``ServerErrorMiddleware`` and
outside everything else, so a bug anywhere (a route, a middleware, a
response) is logged once with its traceback and answered with the JSON 500
body, and Starlette's plain-text 500 never shows.

``RequireToken`` compares with ``hmac.compare_digest`` so the comparison
takes the same time whatever prefix of the token a guess gets right. A
WebSocket is accepted and then closed with 1008: browsers do not let a page
read the status of a refused handshake, but they do show a close code.

``LimitBody`` refuses a declared ``Content-Length`` over the limit before the
route runs, and counts the bytes of every ``http.request`` message as the
route receives them, so a chunked body is refused at the first chunk past
the limit instead of after it has been read into memory.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, QueryParams
from starlette.websockets import WebSocket

from engine.server.errors import RequestError, error_response, internal_error_response
from protocols.events import CloseCode

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CatchAll", "LimitBody", "RequireToken", "needs_token"]

log = logging.getLogger("batchyard.server")


def needs_token(path: str) -> bool:
    """Whether a request for ``path`` must carry the token when one is set."""
    return path.startswith("/api/") or path in ("/api", "/ws", "/metrics")


class CatchAll:
    """Logs any exception that escapes the app and answers the JSON 500 body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent: set[str] = set()

        async def watch(message: Message) -> None:
            sent.add(message["type"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("%s %s failed", scope.get("method", "WS"), scope.get("path"))
            if scope["type"] == "http" and "http.response.start" not in sent:
                await internal_error_response()(scope, receive, send)
            elif scope["type"] == "websocket" and "websocket.close" not in sent:
                await send({"type": "websocket.close", "code": CloseCode.INTERNAL_ERROR})


class RequireToken:
    """Refuses ``/api/*``, ``/ws`` and ``/metrics`` without ``Authorization: Bearer TOKEN``.

    Args:
        app: the wrapped app.
        token: the token, or None to let everything through.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._token = None if token is None else token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._token is None
            or scope["type"] not in ("http", "websocket")
            or not needs_token(scope["path"])
            or self._presented(scope)
        ):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            await websocket.accept()
            await websocket.close(CloseCode.POLICY_VIOLATION, "missing or wrong token")
        else:
            refusal = RequestError(
                401,
                "unauthorized",
                "missing or wrong token: send Authorization: Bearer TOKEN",
                {"WWW-Authenticate": 'Bearer realm="batchyard"'},
            )
            await error_response(refusal)(scope, receive, send)

    def _presented(self, scope: Scope) -> bool:
        assert self._token is not None
        scheme, _, credentials = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials:
            return hmac.compare_digest(credentials.strip().encode(), self._token)
        if scope["type"] == "websocket":
            token = QueryParams(scope["query_string"]).get("token")
            return token is not None and hmac.compare_digest(token.encode(), self._token)
        return False


class LimitBody:
    """Answers 413 to any request body over ``max_bytes``.

    Args:
        app: the wrapped app.
        max_bytes: the largest body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self._max = max_bytes

    def _too_large(self, size: str) -> RequestError:
        return RequestError(
            413, "body-too-large", f"the body is {size} bytes; the limit is {self._max}"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self._max:
            await error_response(self._too_large(declared))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max:
                    raise self._too_large(f"more than {self._max}")
            return message

        await self.app(scope, counted, send)
