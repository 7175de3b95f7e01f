"""What the ``Engine`` facade takes and answers with: a job as a caller asks
for it, what ``start`` did, and a snapshot of the engine.

They sit apart from the facade so that the modules it delegates to (the
lease keeper resumes runs and reads ``StartResult``) need not import it.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = ["EngineStatus", "JobRequest", "StartResult"]


class StartResult(enum.Enum):
    """What ``Engine.start`` did."""

    STARTED = "started"
    ALREADY_RUNNING = "already-running"
    CAPACITY_REACHED = "capacity-reached"


@attrs.frozen(kw_only=True)
class JobRequest:
    """A job as a caller asks for it; ``type`` None means the batch's type;
    rate limits count its ``cost`` (greater than 0)."""

    payload: Any = None
    type: str | None = None
    key: str | None = None
    priority: int = 0
    delay_seconds: float = 0.0
    cost: float = 1.0
    timeout_seconds: float | None = None


@attrs.frozen(kw_only=True)
class EngineStatus:
    """A snapshot of one engine for ``GET /api/status``; ``engine_id`` is
    its id in the cluster (``Engine.owner``)."""

    engine_id: str
    running_batches: tuple[str, ...]
    active_batches: int
    max_batches: int
    is_shutting_down: bool
    paused: bool
