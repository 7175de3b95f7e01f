"""The HTTP and WebSocket server of the engine.

``create_app`` builds the ASGI app for an engine; ``serve`` runs the engine
behind hypercorn until SIGINT or SIGTERM, ``serve_engine`` serves an engine
that is already open. The names are imported lazily, so that importing the
app does not import hypercorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols._lazy import lazy_exports

if TYPE_CHECKING:
    from engine.server.app import create_app
    from engine.server.serve import check_exposure, serve, serve_engine

__all__ = ["check_exposure", "create_app", "serve", "serve_engine"]

_HOMES = {
    "check_exposure": "engine.server.serve",
    "create_app": "engine.server.app",
    "serve": "engine.server.serve",
    "serve_engine": "engine.server.serve",
}


__getattr__ = lazy_exports(__name__, _HOMES)
