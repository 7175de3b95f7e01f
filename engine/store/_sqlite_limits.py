"""The SQLite store's cluster-wide limits: sliding windows of cost, and
concurrency slots with a lease.

Every engine of a SQLite cluster shares the one file, so a table there is a
limit shared by all of them. ``SqliteLimits`` adds the ``Store`` methods to
``SqliteStore``; each is one transaction (``BEGIN IMMEDIATE``: no other
connection can take from the same window in between), whose body is a
function here. The clock is the store's own (``time.time`` unless a test
injects one), read once the transaction has begun: the engines of a SQLite
cluster are on one host and read one clock.

Tables: ``rate_takes`` holds each take (key, time, cost, holder) while it
may still count; older ones are deleted by the next take of the key. A
take named after its holder can be moved later (``delay_rate``); only a
holder's latest take carries its name. A file made before takes had
holders gets the column when it is opened (``create_limit_tables``). ``limit_slots``
holds each slot (key, holder) with its lease expiry; expired slots are
deleted by the next take of the key, so an engine that died frees its slots
one lease after its last renewal.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from engine.store._limits import check_rate, check_slot, positive_delays, seconds_until_room

__all__ = ["SqliteLimits", "create_limit_tables"]

_T = TypeVar("_T")

_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS rate_takes (
    key TEXT NOT NULL,
    at REAL NOT NULL,
    cost REAL NOT NULL,
    holder TEXT
);
CREATE INDEX IF NOT EXISTS rate_takes_key ON rate_takes (key, at);
CREATE TABLE IF NOT EXISTS limit_slots (
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (key, holder)
) WITHOUT ROWID;
COMMIT;
"""

_HOLDERS = "holder IN (SELECT value FROM json_each(?))"


def create_limit_tables(conn: sqlite3.Connection) -> None:
    """Create the limit tables the file lacks, and give ``rate_takes`` its
    ``holder`` column in a file made before it had one (one write
    transaction, so two processes opening it at once cannot both add it)."""
    conn.executescript(_SCHEMA)
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(rate_takes)")}
        if "holder" not in columns:
            conn.execute("ALTER TABLE rate_takes ADD COLUMN holder TEXT")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _take_rate(
    conn: sqlite3.Connection,
    now: float,
    key: str,
    limit: float,
    per: float,
    cost: float,
    holder: str | None,
) -> float:
    conn.execute("DELETE FROM rate_takes WHERE key = ? AND at <= ?", (key, now - per))
    sql = "SELECT at, cost FROM rate_takes WHERE key = ? ORDER BY at, rowid"
    wait = seconds_until_room(conn.execute(sql, (key,)).fetchall(), now, limit, per, cost)
    if wait == 0.0:
        if holder is not None:
            unname = "UPDATE rate_takes SET holder = NULL WHERE key = ? AND holder = ?"
            conn.execute(unname, (key, holder))
        insert = "INSERT INTO rate_takes (key, at, cost, holder) VALUES (?, ?, ?, ?)"
        conn.execute(insert, (key, now, cost, holder))
    return wait


def _delay_rate(
    conn: sqlite3.Connection, now: float, key: str, delays: list[tuple[str, float]]
) -> None:
    sql = "UPDATE rate_takes SET at = at + ? WHERE key = ? AND holder = ?"
    conn.executemany(sql, [(seconds, key, holder) for holder, seconds in delays])


def _hold_rate(
    conn: sqlite3.Connection, now: float, key: str, limit: float, per: float, seconds: float
) -> None:
    insert = "INSERT INTO rate_takes (key, at, cost, holder) VALUES (?, ?, ?, NULL)"
    conn.execute(insert, (key, now + seconds - per, limit))


def _take_slot(
    conn: sqlite3.Connection, now: float, key: str, holder: str, limit: int, lease: float
) -> bool:
    conn.execute("DELETE FROM limit_slots WHERE key = ? AND expires <= ?", (key, now))
    renew = "UPDATE limit_slots SET expires = ? WHERE key = ? AND holder = ?"
    if conn.execute(renew, (now + lease, key, holder)).rowcount:
        return True
    count = "SELECT COUNT(*) FROM limit_slots WHERE key = ?"
    if conn.execute(count, (key,)).fetchone()[0] >= limit:
        return False
    conn.execute("INSERT INTO limit_slots VALUES (?, ?, ?)", (key, holder, now + lease))
    return True


def _release_slots(conn: sqlite3.Connection, now: float, key: str, holders: list[str]) -> None:
    sql = f"DELETE FROM limit_slots WHERE key = ? AND {_HOLDERS}"
    conn.execute(sql, (key, json.dumps(holders)))


def _renew_slots(
    conn: sqlite3.Connection, now: float, key: str, holders: list[str], lease: float
) -> int:
    sql = f"UPDATE limit_slots SET expires = ? WHERE key = ? AND expires > ? AND {_HOLDERS}"
    return conn.execute(sql, (now + lease, key, now, json.dumps(holders))).rowcount


class SqliteLimits:
    """The limit methods of ``SqliteStore`` (see the module notes)."""

    if TYPE_CHECKING:

        async def _run(
            self, work: Callable[[sqlite3.Connection, float], _T], *, write: bool
        ) -> _T: ...

    async def take_rate(
        self, key: str, limit: float, per_seconds: float, cost: float, *, holder: str | None = None
    ) -> float:
        """Take ``cost`` from the sliding window ``key`` if it fits.

        The window is the store's clock (one host's). Cancellation: atomic:
        if it raises ``Cancelled``, nothing was taken.

        Args:
            key: the window's name.
            limit: the most cost any window of ``per_seconds`` may hold.
            per_seconds: the window's length.
            cost: what this take weighs, at most ``limit``.
            holder: names the take, so ``delay_rate`` can move it later.

        Returns:
            0.0 when the cost was taken now; else the seconds until it would
            fit (nothing was taken).

        Raises:
            ValueError: an argument is out of range (cost above the limit).
        """
        check_rate(limit, per_seconds, cost)
        return await self._run(
            lambda conn, now: _take_rate(conn, now, key, limit, per_seconds, cost, holder),
            write=True,
        )

    async def delay_rate(self, key: str, delays: Mapping[str, float]) -> None:
        """Move the latest take of each holder in ``delays`` later in the
        window ``key`` by its delay in seconds; a holder whose take left
        the window (or never was), and a delay that is not positive, change
        nothing.

        Cancellation: atomic: if it raises ``Cancelled``, nothing moved.
        """
        moves = positive_delays(delays)
        if moves:
            await self._run(lambda conn, now: _delay_rate(conn, now, key, moves), write=True)

    async def hold_rate(self, key: str, limit: float, per_seconds: float, seconds: float) -> None:
        """Fill the window ``key`` for ``seconds`` from now: a take of the
        whole ``limit`` that leaves it then (see ``Store.hold_rate``).

        Cancellation: atomic: if it raises ``Cancelled``, nothing was held.

        Raises:
            ValueError: ``limit`` or ``per_seconds`` is not positive and finite.
        """
        check_rate(limit, per_seconds, limit)
        if math.isfinite(seconds) and seconds > 0:
            await self._run(
                lambda conn, now: _hold_rate(conn, now, key, limit, per_seconds, seconds),
                write=True,
            )

    async def take_slot(self, key: str, holder: str, limit: int, lease_seconds: float) -> bool:
        """Take a slot of ``key`` for ``holder`` under a lease, if one is free.

        Cancellation: atomic: if it raises ``Cancelled``, nothing was taken.

        Returns:
            True when ``holder`` holds a slot now (it already did: the lease
            is renewed); False when all ``limit`` slots are held.

        Raises:
            ValueError: ``limit`` below 1 or a lease that is not positive.
        """
        check_slot(limit, lease_seconds)
        return await self._run(
            lambda conn, now: _take_slot(conn, now, key, holder, limit, lease_seconds),
            write=True,
        )

    async def release_slots(self, key: str, holders: Sequence[str]) -> None:
        """Free the slots of ``key`` that ``holders`` hold (unknown ones: nothing).

        Cancellation: atomic: if it raises ``Cancelled``, nothing was freed.
        """
        if holders:
            names = list(holders)
            await self._run(lambda conn, now: _release_slots(conn, now, key, names), write=True)

    async def renew_slots(self, key: str, holders: Sequence[str], lease_seconds: float) -> int:
        """Push the lease of each slot of ``key`` that ``holders`` still hold
        to now + ``lease_seconds``; an expired slot stays lost.

        Cancellation: atomic: if it raises ``Cancelled``, nothing was renewed.

        Returns:
            How many slots were renewed.
        """
        if not holders:
            return 0
        names = list(holders)
        return await self._run(
            lambda conn, now: _renew_slots(conn, now, key, names, lease_seconds), write=True
        )
