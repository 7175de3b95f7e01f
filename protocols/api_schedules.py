"""The body of ``GET /api/schedules``: every schedule of the engine, with
its next due time and its last firing in the cluster.

Encoded like every body of the API (``protocols.api.encode_body``):
``camelCase`` on the wire, times as ISO 8601 with their UTC offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from protocols.codec import invalid_field

__all__ = ["ScheduleList", "ScheduleView"]


def _aware(instance: object, attribute: attrs.Attribute[Any], value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise invalid_field(attribute, f"must carry a UTC offset, got {value.isoformat()}")


@attrs.frozen(kw_only=True)
class ScheduleView:
    """One ``[schedules.NAME]``: ``next_run_at`` is its next due time (None
    when its expression matches no time to come), ``last_run_at`` the due
    time of its last firing on any engine of the cluster (None before the
    first)."""

    name: str
    cron: str
    type: str
    next_run_at: datetime | None = attrs.field(validator=_aware)
    last_run_at: datetime | None = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class ScheduleList:
    """``GET /api/schedules``: the schedules by name."""

    schedules: tuple[ScheduleView, ...]
