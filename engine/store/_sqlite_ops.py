"""The bodies of the SQLite store's transactions.

Each public function here taking ``(conn, now, ...)`` is the body of the
``SqliteStore`` method of the same name. It runs in a worker thread, inside
the one transaction that ``engine.store.sqlite`` opened, and takes the
connection and the transaction's ``now`` (wall-clock seconds, read once the
transaction has begun). Nothing here knows about Trio. The other public
names are shared with ``engine.store._sqlite_cluster`` (the bodies of the
cluster's methods); the schema is in ``engine.store._sqlite_schema``, the
connection and its transactions in ``engine.store._sqlite_connection``.

Every ``UPDATE`` that moves jobs between states is guarded by
``state IN (...)`` built from ``lifecycle.sources(event)``, and the state it
moves them to comes from the same table, so the SQL cannot drift from the
lifecycle. State names are inlined as SQL literals rather than bound, so the
query planner sees constants and can walk the claim index.

``claim_jobs`` is one statement whatever the number of jobs; ``apply``,
the outcomes of claimed jobs, is in ``engine.store._sqlite_outcomes``.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from engine.errors import BatchExists, BatchNotFound, BatchRunning
from engine.store import _json
from engine.store.records import (
    AddResult,
    BatchRecord,
    Counts,
    JobPage,
    JobRecord,
    NewJob,
    starts_by_itself,
)
from protocols.lifecycle import TRANSITIONS, JobEvent, JobState, sources

_STATES = {state.value: state for state in JobState}


def guard(*events: JobEvent) -> str:
    """``state IN (...)``: the job may undergo one of ``events``."""
    states = sorted({state.value for event in events for state in sources(event)})
    return "state IN ({})".format(", ".join(f"'{value}'" for value in states))


def target_state(event: JobEvent) -> JobState:
    """The state ``event`` leads to (the same from every state it is legal in)."""
    (state,) = {TRANSITIONS[source][event] for source in sources(event)}
    return state


def target(event: JobEvent) -> str:
    """``target_state`` as an SQL literal."""
    return f"'{target_state(event).value}'"


_JOB_COLUMNS = (
    "job_id, batch_id, type, state, payload, attempts, max_attempts, key, priority,"
    " result, error, traceback, created_at, available_at, cost,"
    " started_at, finished_at, progress, timeout_seconds"
)
_PENDING = JobState.PENDING.value  # where every job starts
#: The columns of a job that leaves its lease (an outcome, a recovery).
NO_LEASE = "lease_owner = NULL, lease_expires = NULL"
_IN_JSON = "IN (SELECT value FROM json_each(?))"
BATCH_COLUMNS = "b.batch_id, b.type, b.created_at, b.options, r.owner"
# Batches with the owner of their run record when its lease is live (``:now``).
BATCHES = (
    "batches AS b LEFT JOIN runs AS r"
    " ON r.batch_id = b.batch_id AND r.owner IS NOT NULL AND r.expires_at > :now"
)

_INSERT_JOB = (
    "INSERT INTO jobs (job_id, batch_id, type, state, payload, max_attempts, key, priority,"
    " created_at, available_at, cost, timeout_seconds)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_CLAIM = f"""
UPDATE jobs SET state = {target(JobEvent.CLAIM)}, attempts = attempts + 1,
    lease_owner = :owner, lease_expires = :expires, started_at = :now, progress = NULL,
    cancel_requested = NULL
WHERE seq IN (
    SELECT seq FROM jobs
    WHERE batch_id = :batch_id AND {guard(JobEvent.CLAIM)} AND available_at <= :now
    ORDER BY priority DESC, seq LIMIT :limit)
RETURNING priority, seq, {_JOB_COLUMNS}
"""
_RENEW = f"UPDATE jobs SET lease_expires = ? WHERE lease_owner = ? AND {guard(JobEvent.EXPIRE)}"
_RECOVER = f"""
UPDATE jobs SET state = {target(JobEvent.EXPIRE)}, attempts = MAX(attempts - 1, 0), {NO_LEASE}
WHERE lease_owner IS NOT NULL AND lease_expires <= ? AND {guard(JobEvent.EXPIRE)}
"""
_REQUEUE = f"""
UPDATE jobs SET state = {target(JobEvent.REQUEUE)}, attempts = 0, error = NULL,
    traceback = NULL, result = NULL, available_at = ?, finished_at = NULL,
    started_at = NULL, progress = NULL
WHERE batch_id = ? AND {guard(JobEvent.REQUEUE)}
"""
_NEXT_DUE = f"SELECT MIN(available_at) FROM jobs WHERE batch_id = ? AND {guard(JobEvent.CLAIM)}"
# Counting per batch walks the claim index instead of the whole table.
_QUEUE_LENGTH = (
    "SELECT COUNT(*) FROM jobs WHERE batch_id IN (SELECT batch_id FROM batches)"
    f" AND state = '{_PENDING}'"
)


def _job(row: Sequence[Any]) -> JobRecord:
    """A row of ``_JOB_COLUMNS`` as a record; ``StoreError`` if it is not one."""
    with _json.reading("job"):
        return _job_fields(row)


def _jobs(rows: Iterable[Sequence[Any]]) -> list[JobRecord]:
    """Rows of ``_JOB_COLUMNS`` as records (a claim's: one reading block
    for them all); ``StoreError`` if one is not one."""
    with _json.reading("job"):
        return [_job_fields(row) for row in rows]


def _job_fields(row: Sequence[Any]) -> JobRecord:
    # One unpacking, not slices: this runs for every claimed job.
    (
        job_id,
        batch_id,
        type_,
        state,
        payload,
        attempts,
        max_attempts,
        key,
        priority,
        result,
        error,
        traceback,
        created_at,
        available_at,
        cost,
        started_at,
        finished_at,
        progress,
        timeout_seconds,
    ) = row
    return JobRecord(
        job_id=job_id,
        batch_id=batch_id,
        type=type_,
        state=_STATES[state],
        payload=_json.read(payload),
        attempts=attempts,
        max_attempts=max_attempts,
        key=key,
        priority=priority,
        result=None if result is None else _json.read(result),
        error=error,
        traceback=traceback,
        created_at=created_at,
        available_at=available_at,
        cost=cost,
        started_at=started_at,
        finished_at=finished_at,
        progress=progress,
        timeout_seconds=timeout_seconds,
    )


def batch_record(row: Sequence[Any], counts: Counts) -> BatchRecord:
    """A row of ``BATCH_COLUMNS`` as a record; ``StoreError`` if it is not one."""
    with _json.reading("batch"):
        batch_id, type_, created_at, options, run_owner = row
        return BatchRecord(
            batch_id=batch_id,
            type=type_,
            created_at=created_at,
            options=_json.load(options),
            counts=counts,
            run_owner=run_owner,
        )


def require_batch(conn: sqlite3.Connection, batch_id: str) -> None:
    if conn.execute("SELECT 1 FROM batches WHERE batch_id = ?", (batch_id,)).fetchone() is None:
        raise BatchNotFound(f"no batch {batch_id!r}")


def batch_counts(conn: sqlite3.Connection, batch_id: str) -> Counts:
    rows = conn.execute(
        "SELECT state, COUNT(*) FROM jobs WHERE batch_id = ? GROUP BY state", (batch_id,)
    )
    return Counts(**dict(rows.fetchall()))


def create_batch(
    conn: sqlite3.Connection, now: float, batch_id: str, type_: str, options: dict[str, Any]
) -> BatchRecord:
    sql = "INSERT INTO batches VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    row = (batch_id, type_, now, _json.dump(options), starts_by_itself(options))
    if conn.execute(sql, row).rowcount == 0:
        raise BatchExists(f"batch {batch_id!r} already exists")
    return BatchRecord(batch_id=batch_id, type=type_, created_at=now, options=options)


def get_batch(conn: sqlite3.Connection, now: float, batch_id: str) -> BatchRecord:
    sql = f"SELECT {BATCH_COLUMNS} FROM {BATCHES} WHERE b.batch_id = :batch_id"
    row = conn.execute(sql, {"batch_id": batch_id, "now": now}).fetchone()
    if row is None:
        raise BatchNotFound(f"no batch {batch_id!r}")
    return batch_record(row, batch_counts(conn, batch_id))


def list_batches(conn: sqlite3.Connection, now: float) -> list[BatchRecord]:
    counts: dict[str, dict[str, int]] = {}
    grouped = "SELECT batch_id, state, COUNT(*) FROM jobs GROUP BY batch_id, state"
    for batch_id, state, n in conn.execute(grouped):
        counts.setdefault(batch_id, {})[state] = n
    sql = f"SELECT {BATCH_COLUMNS} FROM {BATCHES} ORDER BY b.created_at, b.rowid"
    rows = conn.execute(sql, {"now": now})
    return [batch_record(row, Counts(**counts.get(row[0], {}))) for row in rows]


def delete_batch(conn: sqlite3.Connection, now: float, batch_id: str) -> None:
    require_batch(conn, batch_id)
    sql = "SELECT owner FROM runs WHERE batch_id = ? AND owner IS NOT NULL AND expires_at > ?"
    live = conn.execute(sql, (batch_id, now)).fetchone()
    if live is not None:
        raise BatchRunning(f"batch {batch_id!r} is running on engine {live[0]!r}")
    conn.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
    conn.execute("DELETE FROM jobs WHERE batch_id = ?", (batch_id,))
    conn.execute("DELETE FROM runs WHERE batch_id = ?", (batch_id,))


#: Rows inserted per statement: a large add is written a page at a time,
#: so its rows never all exist at once (the engine's memory stays flat).
_INSERT_PAGE = 500


def add_jobs(
    conn: sqlite3.Connection, now: float, batch_id: str, jobs: Sequence[NewJob]
) -> AddResult:
    require_batch(conn, batch_id)
    keys = sorted({job.key for job in jobs if job.key is not None})
    sql = f"SELECT key FROM jobs WHERE batch_id = ? AND key {_IN_JSON}"
    taken = {key for (key,) in conn.execute(sql, (batch_id, _json.dump(keys)))}
    job_ids: list[str] = []
    rows = []
    for job in jobs:
        if job.key is not None:
            if job.key in taken:
                continue
            taken.add(job.key)
        due = now + max(job.delay_seconds, 0.0)
        row = (uuid.uuid4().hex, batch_id, job.type, _PENDING, _json.dump(job.payload))
        rows.append(
            (
                *row,
                job.max_attempts,
                job.key,
                job.priority,
                now,
                due,
                job.cost,
                job.timeout_seconds,
            )
        )
        job_ids.append(row[0])
        if len(rows) == _INSERT_PAGE:
            conn.executemany(_INSERT_JOB, rows)
            rows.clear()
    conn.executemany(_INSERT_JOB, rows)
    return AddResult(
        enqueued=len(job_ids), duplicates=len(jobs) - len(job_ids), job_ids=tuple(job_ids)
    )


def claim_jobs(
    conn: sqlite3.Connection, now: float, batch_id: str, limit: int, owner: str, lease: float
) -> list[JobRecord]:
    params = {"batch_id": batch_id, "now": now, "limit": limit}
    rows = conn.execute(_CLAIM, {**params, "owner": owner, "expires": now + lease}).fetchall()
    rows.sort(key=lambda row: (-row[0], row[1]))  # RETURNING has no order of its own
    return _jobs(row[2:] for row in rows)


def next_due_at(conn: sqlite3.Connection, now: float, batch_id: str) -> float | None:
    due: float | None = conn.execute(_NEXT_DUE, (batch_id,)).fetchone()[0]
    return due


def counts(conn: sqlite3.Connection, now: float, batch_id: str) -> Counts:
    require_batch(conn, batch_id)
    return batch_counts(conn, batch_id)


def queue_length(conn: sqlite3.Connection, now: float) -> int:
    length: int = conn.execute(_QUEUE_LENGTH).fetchone()[0]
    return length


def list_jobs(
    conn: sqlite3.Connection,
    now: float,
    batch_id: str,
    state: JobState | None,
    limit: int,
    after: int,
) -> JobPage:
    require_batch(conn, batch_id)
    where, params = "batch_id = ? AND seq > ?", [batch_id, after]
    if state is not None:
        where, params = f"{where} AND state = ?", [*params, state.value]
    sql = f"SELECT seq, {_JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY seq LIMIT ?"
    rows = conn.execute(sql, (*params, limit + 1)).fetchall()
    next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
    return JobPage(jobs=tuple(_jobs(row[1:] for row in rows[:limit])), next_cursor=next_cursor)


def parse_cursor(cursor: str | None) -> int:
    """The seq after which a page starts; cursors are decimal seqs."""
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdecimal() and len(cursor) <= 18):
        raise ValueError(f"not a cursor of this store: {cursor!r}")
    return int(cursor)


def retry_failed(conn: sqlite3.Connection, now: float, batch_id: str) -> int:
    require_batch(conn, batch_id)
    return conn.execute(_REQUEUE, (now, batch_id)).rowcount


def renew_leases(conn: sqlite3.Connection, now: float, owner: str, lease: float) -> int:
    conn.execute("UPDATE runs SET expires_at = ? WHERE owner = ?", (now + lease, owner))
    return conn.execute(_RENEW, (now + lease, owner)).rowcount


def recover_expired_leases(conn: sqlite3.Connection, now: float) -> int:
    return conn.execute(_RECOVER, (now,)).rowcount


def ping(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("SELECT 1").fetchone()
