"""The engine core: the ``Engine`` facade and its nursery, batch runs, the
recorder, limits, the event bus and lease keeping.

Nothing here imports the server, the client or the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols._lazy import lazy_exports

if TYPE_CHECKING:
    from engine.core.bus import EventBus, Subscription
    from engine.core.engine import Engine, EngineStatus, JobRequest, StartResult
    from engine.core.startup import open_engine

__all__ = [
    "Engine",
    "EngineStatus",
    "EventBus",
    "JobRequest",
    "StartResult",
    "Subscription",
    "open_engine",
]

_HOMES = {
    "Engine": "engine.core.engine",
    "EngineStatus": "engine.core.engine",
    "EventBus": "engine.core.bus",
    "JobRequest": "engine.core.engine",
    "StartResult": "engine.core.engine",
    "Subscription": "engine.core.bus",
    "open_engine": "engine.core.startup",
}

__getattr__ = lazy_exports(__name__, _HOMES)
