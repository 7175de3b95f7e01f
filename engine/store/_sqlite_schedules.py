"""The SQLite store's schedule firings: which due time of each schedule
was fired last.

Table ``schedule_firings``: one row per schedule (name, the due time of its
last claimed firing). ``claim_firing`` is one ``INSERT ... ON CONFLICT DO
UPDATE ... WHERE`` in a write transaction (``BEGIN IMMEDIATE``), so of the
engines sharing the file that claim one due time, exactly one changes the
row and so wins; one claiming a due time not later than the row's loses.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

__all__ = ["SqliteSchedules", "create_schedule_table"]

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedule_firings (
    name TEXT PRIMARY KEY,
    due_at REAL NOT NULL
) WITHOUT ROWID;
"""

_CLAIM = """
INSERT INTO schedule_firings (name, due_at) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET due_at = excluded.due_at
WHERE excluded.due_at > schedule_firings.due_at
"""


def create_schedule_table(conn: sqlite3.Connection) -> None:
    """Create the firings table if the file lacks it."""
    conn.execute(_SCHEMA)


def _claim(conn: sqlite3.Connection, name: str, due_at: float) -> bool:
    return conn.execute(_CLAIM, (name, due_at)).rowcount == 1


def _last(conn: sqlite3.Connection) -> dict[str, float]:
    return dict(conn.execute("SELECT name, due_at FROM schedule_firings").fetchall())


class SqliteSchedules:
    """The schedule methods of ``SqliteStore`` (see the module notes)."""

    if TYPE_CHECKING:

        async def _run(
            self, work: Callable[[sqlite3.Connection, float], _T], *, write: bool
        ) -> _T: ...

    async def claim_firing(self, name: str, due_at: float) -> bool:
        """Claim the firing of ``name`` at ``due_at`` if it is later than the
        last one claimed; one transaction.

        Cancellation: atomic: if it raises ``Cancelled``, nothing was claimed.

        Returns:
            Whether this call claimed it.
        """
        return await self._run(lambda conn, now: _claim(conn, name, due_at), write=True)

    async def last_firings(self) -> dict[str, float]:
        """The due time of each schedule's last claimed firing, by name.

        Cancellation: atomic: it only reads.
        """
        return await self._run(lambda conn, now: _last(conn), write=False)
