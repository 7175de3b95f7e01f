"""The body of ``GET /api/schedules``: every schedule of the engine, with
its next due time and its last firing in the cluster.

Encoded like every body of the API (``protocols.api.encode_body``):
``camelCase`` on the wire, times as ISO 8601 with their UTC offset.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from protocols import bounds

__all__ = ["ScheduleList", "ScheduleView"]


@attrs.frozen(kw_only=True)
class ScheduleView:
    """One ``[schedules.NAME]``: ``next_run_at`` is its next due time (None
    when its expression matches no time to come), ``last_run_at`` the due
    time of its last firing on any engine of the cluster (None before the
    first)."""

    name: str
    cron: str
    type: str
    next_run_at: datetime | None = attrs.field(validator=bounds.Aware())
    last_run_at: datetime | None = attrs.field(validator=bounds.Aware())


@attrs.frozen(kw_only=True)
class ScheduleList:
    """``GET /api/schedules``: the schedules by name."""

    schedules: tuple[ScheduleView, ...]
