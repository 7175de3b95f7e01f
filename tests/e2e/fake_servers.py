"""Small real servers for the client's tests, and the frames they send.

A test builds a Starlette app that answers exactly what its case needs
(``app_of``, ``error``) and serves it with hypercorn on a free local port
(``serve_app``); ``event`` is a WebSocket frame as the engine's server
would send it.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]


@asynccontextmanager
async def serve_app(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` on a free local port; yields its base URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(functools.partial(serve, app, config))
        yield binds[0]
        nursery.cancel_scope.cancel()


def app_of(routes: dict[str, Handler], *, methods: Sequence[str] = ("GET", "POST")) -> Starlette:
    return Starlette(routes=[Route(p, h, methods=list(methods)) for p, h in routes.items()])


def error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


#: What each event's data holds besides ``batchId`` unless a test says otherwise.
_COUNTS: dict[str, dict[str, Any]] = {
    "processing:progress": {"completed": 0, "failed": 0, "total": 0},
    "done": {"completed": 0, "failed": 0},
}


def event(seq: int, name: str = "job:progress", **data: Any) -> dict[str, Any]:
    """A WebSocket frame of batch ``b``, as the server would send it."""
    return {"event": name, "seq": seq, "data": {"batchId": "b", **_COUNTS.get(name, {}), **data}}
