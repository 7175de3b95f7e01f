"""The ASGI app: every route of the contract, bound to one engine.

Design notes
------------
``create_app(engine)`` builds a Starlette app and nothing else: it does not
start the engine, bind a socket or know which ASGI server runs it (that is
``engine.server.serve``). The app's lifespan owns one task, the metrics
follower, in a nursery that lives as long as the app is served.

Layers, outermost first: Starlette's ``ServerErrorMiddleware`` (never
reached: ``CatchAll`` answers first), ``CatchAll``, Starlette's
``CORSMiddleware`` only when ``BATCHYARD_CORS_ORIGINS`` lists origins (a
preflight needs no token, so it sits outside ``RequireToken``; without
origins no CORS header is ever sent), ``RequireToken``,
``LimitBody``, Starlette's ``ExceptionMiddleware`` with ``handle_error`` for
every error the API answers on purpose, then the router.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import trio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.core.engine import Engine
from engine.server.errors import HANDLED, handle_error
from engine.server.metrics import ServerMetrics
from engine.server.middleware import CatchAll, LimitBody, RequireToken
from engine.server.openapi import openapi_document
from engine.server.page import dashboard_routes
from engine.server.routes import api_routes
from engine.server.streams import event_routes

__all__ = ["create_app"]


#: What a page of another origin may send: the token, JSON bodies, and the
#: seq an event stream resumes from.
_CORS_HEADERS = ("Authorization", "Content-Type", "Last-Event-ID")


def _cors(origins: tuple[str, ...]) -> list[Middleware]:
    """Starlette's CORS layer for ``origins``; none at all without them."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=list(_CORS_HEADERS),
        )
    ]


def create_app(engine: Engine) -> Starlette:
    """The app serving ``engine``.

    Args:
        engine: an open engine; the app neither starts nor stops it.

    Returns:
        The Starlette app; run its lifespan (any ASGI server does) so that
        event-derived metrics are counted.
    """
    settings = engine.settings
    metrics = ServerMetrics(engine)
    server_version = version("batchyard")
    document = openapi_document(
        server_version, secured=settings.token is not None, job_types=engine.registry.names()
    )

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with trio.open_nursery() as nursery:
            await nursery.start(metrics.follow)
            yield
            nursery.cancel_scope.cancel()

    routes = [
        *api_routes(engine),
        *event_routes(engine, metrics),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *dashboard_routes(),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(CatchAll),
            *_cors(settings.cors_origins),
            Middleware(RequireToken, token=settings.token),
            Middleware(LimitBody, max_bytes=settings.max_body_bytes),
        ],
        exception_handlers=dict.fromkeys(HANDLED, handle_error),
        lifespan=lifespan,
    )
