"""What the engines of a cluster share in the SQLite store: the engine
registry, run ownership and the queue of startable batches.

Design notes
------------
``SqliteClusterMethods`` holds the ``Store`` methods of the cluster;
``SqliteStore`` inherits them, so they run the same way as every other
method: one transaction each, in the worker thread, through the store's
``_run`` (see ``engine.store.sqlite`` for the cancellation and error
model). The functions below them are their transactions' bodies.

Tables (``engine.store._sqlite_schema``): ``runs`` holds one row per
remembered run, ``owner`` NULL once handed over; ``engines`` one row per
registered engine, its running batches as a JSON list. A write transaction
takes SQLite's write lock before it reads, so ``acquire_run``'s read of the
current owner and its write are one atomic step across every connection
to the file.

A run's owner is *live* while ``expires_at > now``; ``BatchRecord.run_owner``
and ``startable_batches`` go by that (the join in ``_sqlite_ops.BATCHES``).
``startable_batches`` walks batches oldest first and, for each, the claim
index of its pending jobs until one is due: never a scan of all jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import attrs

from engine.store import _json
from engine.store._sqlite_ops import (
    BATCH_COLUMNS,
    BATCHES,
    batch_counts,
    batch_record,
    guard,
    require_batch,
    target,
)
from engine.store.records import BatchRecord, EngineRecord, RunRecord
from protocols.lifecycle import JobEvent

if TYPE_CHECKING:
    import sqlite3

__all__ = ["SqliteClusterMethods"]

_T = TypeVar("_T")

_ENGINE_COLUMNS = (
    "engine_id, host, pid, boot_id, max_batches, running_batches, last_seen, expires_at"
)
_ACQUIRE = """
INSERT INTO runs VALUES (:batch_id, :owner, :expires) ON CONFLICT (batch_id)
DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE runs.owner IS NULL OR runs.owner = excluded.owner OR runs.expires_at <= :now
"""
_FORGET_RUN = "DELETE FROM runs WHERE batch_id = :batch_id AND owner = :owner"
_HAND_OVER_RUN = (
    "UPDATE runs SET owner = NULL, expires_at = :now WHERE batch_id = :batch_id AND owner = :owner"
)
_RECOVER_OWNER = f"""
UPDATE jobs SET state = {target(JobEvent.EXPIRE)}, attempts = MAX(attempts - 1, 0),
    lease_owner = NULL, lease_expires = NULL
WHERE lease_owner = ? AND {guard(JobEvent.EXPIRE)}
"""
_STARTABLE = f"""
SELECT {BATCH_COLUMNS} FROM {BATCHES}
WHERE r.owner IS NULL AND (:any_batch OR b.starts_itself)
    AND EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = b.batch_id
        AND {guard(JobEvent.CLAIM)} AND available_at <= :now)
ORDER BY b.created_at, b.rowid LIMIT :limit
"""


class SqliteClusterMethods:
    """The cluster's ``Store`` methods on SQLite, for ``SqliteStore``.

    Every method is one transaction, atomic under cancellation, and raises
    ``StoreUnavailable`` when SQLite cannot do the work, having written
    nothing.
    """

    if TYPE_CHECKING:

        async def _run(
            self, work: Callable[[sqlite3.Connection, float], _T], *, write: bool
        ) -> _T: ...

    async def heartbeat(self, record: EngineRecord, ttl_seconds: float) -> EngineRecord:
        """Register the engine, replacing its earlier record: seen now, live
        for ``ttl_seconds``.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Returns:
            The record as stored (``last_seen`` and ``expires_at`` set).
        """
        return await self._run(
            lambda conn, now: heartbeat(conn, now, record, ttl_seconds), write=True
        )

    async def engines(self) -> list[EngineRecord]:
        """Every registered engine, live or not, by engine id.

        Cancellation: atomic: it only reads.
        """
        return await self._run(engines, write=False)

    async def forget_engine(self, engine_id: str) -> None:
        """Unregister the engine; an unknown one is left alone.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.
        """
        await self._run(lambda conn, now: forget_engine(conn, now, engine_id), write=True)

    async def acquire_run(self, batch_id: str, owner: str, lease_seconds: float) -> str:
        """Make ``owner`` the batch's runner unless another owner's lease on
        it is live.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Returns:
            ``owner`` when it took or already held the run (its lease now
            ends in ``lease_seconds``); else the engine that holds it.

        Raises:
            BatchNotFound: no such batch.
        """
        return await self._run(
            lambda conn, now: acquire_run(conn, now, batch_id, owner, lease_seconds), write=True
        )

    async def release_run(self, batch_id: str, owner: str, *, finished: bool) -> bool:
        """If ``owner`` holds the batch's run record: forget it when
        ``finished``, else hand it over (owner None, free at once).

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Returns:
            Whether ``owner`` held it.
        """
        return await self._run(
            lambda conn, now: release_run(conn, now, batch_id, owner, finished), write=True
        )

    async def runs(self) -> list[RunRecord]:
        """Every remembered run, by batch id.

        Cancellation: atomic: it only reads.
        """
        return await self._run(runs, write=False)

    async def recover_engine(self, owner: str) -> int:
        """Take back what the (dead) engine ``owner`` held: its active jobs
        back to pending with the attempt refunded, its runs handed over.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Returns:
            How many jobs went back to pending.
        """
        return await self._run(lambda conn, now: recover_engine(conn, now, owner), write=True)

    async def startable_batches(self, limit: int, *, any_batch: bool) -> list[BatchRecord]:
        """Up to ``limit`` batches with a due pending job and no live run
        owner, oldest first; unless ``any_batch``, only those that start by
        themselves.

        Cancellation: atomic: it only reads.

        Returns:
            The batches with their counts (``run_owner`` None).
        """
        if limit <= 0:
            return []
        return await self._run(
            lambda conn, now: startable_batches(conn, now, limit, any_batch), write=False
        )


def heartbeat(
    conn: sqlite3.Connection, now: float, record: EngineRecord, ttl: float
) -> EngineRecord:
    stored = attrs.evolve(record, last_seen=now, expires_at=now + ttl)
    running = _json.dump(list(stored.running_batches))
    row = (stored.engine_id, stored.host, stored.pid, stored.boot_id, stored.max_batches)
    conn.execute(
        f"INSERT OR REPLACE INTO engines ({_ENGINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (*row, running, stored.last_seen, stored.expires_at),
    )
    return stored


def engines(conn: sqlite3.Connection, now: float) -> list[EngineRecord]:
    rows = conn.execute(f"SELECT {_ENGINE_COLUMNS} FROM engines ORDER BY engine_id")
    return [
        EngineRecord(
            engine_id=engine_id,
            host=host,
            pid=pid,
            boot_id=boot_id,
            max_batches=max_batches,
            running_batches=tuple(_json.load(running)),
            last_seen=last_seen,
            expires_at=expires_at,
        )
        for engine_id, host, pid, boot_id, max_batches, running, last_seen, expires_at in rows
    ]


def forget_engine(conn: sqlite3.Connection, now: float, engine_id: str) -> None:
    conn.execute("DELETE FROM engines WHERE engine_id = ?", (engine_id,))


def acquire_run(
    conn: sqlite3.Connection, now: float, batch_id: str, owner: str, lease: float
) -> str:
    require_batch(conn, batch_id)
    params = {"batch_id": batch_id, "owner": owner, "expires": now + lease, "now": now}
    conn.execute(_ACQUIRE, params)
    (held,) = conn.execute("SELECT owner FROM runs WHERE batch_id = ?", (batch_id,)).fetchone()
    return str(held)


def release_run(
    conn: sqlite3.Connection, now: float, batch_id: str, owner: str, finished: bool
) -> bool:
    params = {"batch_id": batch_id, "owner": owner, "now": now}
    sql = _FORGET_RUN if finished else _HAND_OVER_RUN
    return conn.execute(sql, params).rowcount > 0


def runs(conn: sqlite3.Connection, now: float) -> list[RunRecord]:
    rows = conn.execute("SELECT batch_id, owner, expires_at FROM runs ORDER BY batch_id")
    return [
        RunRecord(batch_id=batch_id, owner=owner, expires_at=expires_at)
        for batch_id, owner, expires_at in rows
    ]


def recover_engine(conn: sqlite3.Connection, now: float, owner: str) -> int:
    conn.execute("UPDATE runs SET owner = NULL, expires_at = ? WHERE owner = ?", (now, owner))
    return conn.execute(_RECOVER_OWNER, (owner,)).rowcount


def startable_batches(
    conn: sqlite3.Connection, now: float, limit: int, any_batch: bool
) -> list[BatchRecord]:
    params = {"now": now, "limit": limit, "any_batch": any_batch}
    rows = conn.execute(_STARTABLE, params).fetchall()
    return [batch_record(row, batch_counts(conn, row[0])) for row in rows]
