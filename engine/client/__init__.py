"""The client side of batchyard: the HTTP client, its errors and the
WebSocket watch. It imports ``protocols`` and nothing of the engine core."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols._lazy import lazy_exports

if TYPE_CHECKING:
    from engine.client.errors import ClientError
    from engine.client.http import BatchyardClient

__all__ = ["BatchyardClient", "ClientError"]

_HOMES = {
    "BatchyardClient": "engine.client.http",
    "ClientError": "engine.client.errors",
}

__getattr__ = lazy_exports(__name__, _HOMES)
