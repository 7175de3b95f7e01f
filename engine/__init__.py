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
    from engine.client.http import BatchyardClient
    from engine.config.settings import RateLimit, Settings
    from engine.core.bus import EventBus, Subscription
    from engine.core.engine import Engine, EngineStatus, JobRequest, StartResult
    from engine.core.startup import open_engine
    from engine.errors import EngineError, RateLimited
    from engine.jobs.registry import JobContext, JobRegistry, job_type

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
    "RateLimited",
    "Settings",
    "StartResult",
    "Subscription",
    "job_type",
    "open_engine",
]

_HOMES = {
    "BatchyardClient": "engine.client.http",
    "Engine": "engine.core.engine",
    "EngineError": "engine.errors",
    "EngineStatus": "engine.core.engine",
    "EventBus": "engine.core.bus",
    "JobContext": "engine.jobs.registry",
    "JobRegistry": "engine.jobs.registry",
    "JobRequest": "engine.core.engine",
    "RateLimit": "engine.config.settings",
    "RateLimited": "engine.errors",
    "Settings": "engine.config.settings",
    "StartResult": "engine.core.engine",
    "Subscription": "engine.core.bus",
    "job_type": "engine.jobs.registry",
    "open_engine": "engine.core.startup",
}


__getattr__ = lazy_exports(__name__, _HOMES)
