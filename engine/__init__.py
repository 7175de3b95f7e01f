"""batchyard's engine: run batches of jobs in child processes.

The public names below are imported lazily (on first attribute access): the
child process imports ``engine.child`` and must not pay for the store, the
server stack or the engine it never uses, and batch start latency depends on
how fast a child starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols._lazy import lazy_exports

if TYPE_CHECKING:
    from engine.bus import EventBus, Subscription
    from engine.client import BatchyardClient
    from engine.engine import Engine, EngineStatus, JobRequest, StartResult, open_engine
    from engine.errors import EngineError
    from engine.jobs import JobContext, JobRegistry, job_type
    from engine.settings import RateLimit, Settings

__all__ = [
    "BatchyardClient",
    "Engine",
    "EngineError",
    "EngineStatus",
    "EventBus",
    "JobContext",
    "JobRegistry",
    "JobRequest",
    "RateLimit",
    "Settings",
    "StartResult",
    "Subscription",
    "job_type",
    "open_engine",
]

_HOMES = {
    "BatchyardClient": "engine.client",
    "Engine": "engine.engine",
    "EngineError": "engine.errors",
    "EngineStatus": "engine.engine",
    "EventBus": "engine.bus",
    "JobContext": "engine.jobs",
    "JobRegistry": "engine.jobs",
    "JobRequest": "engine.engine",
    "RateLimit": "engine.settings",
    "Settings": "engine.settings",
    "StartResult": "engine.engine",
    "Subscription": "engine.bus",
    "job_type": "engine.jobs",
    "open_engine": "engine.engine",
}


__getattr__ = lazy_exports(__name__, _HOMES)
