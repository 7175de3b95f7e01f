"""Schedules: the ``[schedules.NAME]`` tables of the TOML file, and when
each one is due.

Design notes
------------
A schedule creates one batch at every time its cron expression names:
five fields (minute, hour, day of month, month, day of week), read in UTC.
The expression is read by ``cronsim``, which refuses what it cannot read
with a message naming the field; a six-field expression (with seconds),
which ``cronsim`` would take, is refused here, since the contract names
five. An expression that no date ever matches (``0 0 30 2 *``) is refused
too, when ``cronsim`` sees it; one whose next match lies beyond its
horizon has no next due time (``next_due`` returns None).

Keys of a table: ``cron`` and ``type`` (required), ``payload`` (any TOML
value, default ``{}``), ``batch`` (the prefix of each firing's batch id,
default the schedule's name) and ``start`` (default true). Each firing's
batch is ``PREFIX-YYYYmmddTHHMM`` of its due time in UTC, so two engines
that both tried to fire the same due time would name the same batch.

Whether ``type`` is a registered job type is checked when the engine
opens (the job modules are imported then), not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from cronsim import CronSim, CronSimError

from engine.errors import ConfigError

__all__ = ["Schedule", "read_schedules"]

_KEYS = ("cron", "type", "payload", "batch", "start")

# A batch id is at most 128 of these characters (``protocols.api``); a
# firing adds ``-YYYYmmddTHHMM``, 14 more.
_PREFIX = re.compile(r"[A-Za-z0-9._:-]{1,114}")
_PREFIX_RULE = "1 to 114 letters, digits, '.', '_', ':' or '-'"


def _check_cron(schedule: Schedule, attribute: attrs.Attribute[str], cron: str) -> None:
    where = f"[schedules.{schedule.name}] cron={cron!r}"
    if len(cron.split()) != 5:
        raise ConfigError(f"{where} is not a cron expression: expected five fields")
    try:
        CronSim(cron, datetime.now(UTC))
    except CronSimError as exc:
        raise ConfigError(f"{where} is not a cron expression: {exc}") from None


@attrs.frozen(kw_only=True)
class Schedule:
    """One ``[schedules.NAME]`` table: create a batch of one ``type`` job
    with ``payload`` at every due time of ``cron`` (UTC)."""

    name: str
    cron: str = attrs.field(validator=_check_cron)
    type: str
    payload: Any = attrs.field(factory=dict)
    batch_prefix: str
    start: bool = True

    def next_due(self, after: float) -> float | None:
        """The first due time strictly after ``after`` (epoch seconds), or
        None when the expression matches no time in ``cronsim``'s horizon."""
        try:
            due = next(CronSim(self.cron, datetime.fromtimestamp(after, UTC)))
        except StopIteration:
            return None
        return due.timestamp()

    def batch_id(self, due: float) -> str:
        """The id of the batch the firing at ``due`` creates."""
        return f"{self.batch_prefix}-{datetime.fromtimestamp(due, UTC):%Y%m%dT%H%M}"


def read_schedules(tables: object, where: str) -> dict[str, Schedule]:
    """The schedules of a ``[schedules]`` table of the file ``where``.

    Raises:
        ConfigError: a table, key or value is invalid; the message names the
            schedule.
    """
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{where}: [schedules] is not a table")
    return {name: _schedule(name, table, where) for name, table in tables.items()}


def _schedule(name: str, table: object, where: str) -> Schedule:
    here = f"{where}: [schedules.{name}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{here} is not a table")
    for key in table:
        if key not in _KEYS:
            raise ConfigError(
                f"{here} has unknown key {key!r}: expected one of {', '.join(_KEYS)}"
            )
    for key in ("cron", "type"):
        if key not in table:
            raise ConfigError(f"{here} lacks the key {key!r}")
        if not isinstance(table[key], str) or not table[key].strip():
            raise ConfigError(f"{here} {key}={table[key]!r} is not a non-empty string")
    prefix = table.get("batch", name)
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ConfigError(f"{here} batch={prefix!r} is not a batch id prefix: {_PREFIX_RULE}")
    start = table.get("start", True)
    if not isinstance(start, bool):
        raise ConfigError(f"{here} start={start!r} is not a boolean")
    try:
        return Schedule(
            name=name,
            cron=table["cron"],
            type=table["type"],
            payload=_plain(table.get("payload", {})),
            batch_prefix=prefix,
            start=start,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _plain(value: object) -> object:
    """A TOML value as JSON data: dates and times become ISO 8601 text."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
