"""The SQLite store's schema and the bodies of its transactions.

Each public function here is the body of the ``SqliteStore`` method of the
same name. It runs in a worker thread, inside the one transaction that
``engine.store.sqlite`` opened, and takes the connection and the
transaction's ``now`` (wall-clock seconds, read once the transaction has
begun). Nothing here knows about Trio.

Every ``UPDATE`` that moves jobs between states is guarded by
``state IN (...)`` built from ``lifecycle.sources(event)``, and the state it
moves them to comes from the same table, so the SQL cannot drift from the
lifecycle. State names are inlined as SQL literals rather than bound, so the
query planner sees constants and can walk the claim index.

``apply`` and ``claim_jobs`` are a fixed handful of statements whatever the
number of jobs: a list of job ids travels as one JSON parameter read with
``json_each``, and updates of one kind go through one ``executemany``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from engine.errors import BatchExists, BatchNotFound, StoreUnavailable
from engine.store import _json, _sqlite_limits
from engine.store.base import (
    AddResult,
    BatchRecord,
    Complete,
    Counts,
    Fail,
    JobPage,
    JobRecord,
    NewJob,
    Outcome,
)
from protocols.lifecycle import TRANSITIONS, JobEvent, JobState, sources

_log = logging.getLogger("batchyard.store")

#: Errors that mean a bug in this module, not an unavailable database.
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError)

# ``jobs_claim`` walks a batch's pending jobs in the order they are handed out,
# and counts jobs per state. ``jobs_batch`` serves pages in ``seq`` order
# (index entries end with the rowid, which is ``seq``); batch and seq never
# change, so claims and outcomes do not pay for it. ``jobs_lease`` holds only
# jobs with a lease, i.e. active ones, so it stays small. ``jobs_key`` makes
# idempotency keys unique per batch.
SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    created_at REAL NOT NULL,
    options TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    batch_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    key TEXT,
    priority INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    traceback TEXT,
    created_at REAL NOT NULL,
    available_at REAL NOT NULL,
    lease_owner TEXT,
    lease_expires REAL,
    cost REAL NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_key ON jobs (batch_id, key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (batch_id, state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS jobs_batch ON jobs (batch_id);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_owner, lease_expires)
    WHERE lease_owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS running (
    batch_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    since REAL NOT NULL
);
COMMIT;
"""


#: ``lifecycle.TRANSITIONS`` keyed by stored state names, for the per-job loop
#: of ``apply``, where calling ``sources()`` and building enums for each job
#: took a third of the time.
_MOVES = {
    (source.value, event): target
    for source, moves in TRANSITIONS.items()
    for event, target in moves.items()
}
_STATES = {state.value: state for state in JobState}


def _guard(*events: JobEvent) -> str:
    """``state IN (...)``: the job may undergo one of ``events``."""
    states = sorted({state.value for event in events for state in sources(event)})
    return "state IN ({})".format(", ".join(f"'{value}'" for value in states))


def _target(event: JobEvent) -> str:
    """The state ``event`` leads to (the same from every state it is legal in)."""
    (state,) = {TRANSITIONS[source][event] for source in sources(event)}
    return f"'{state.value}'"


_JOB_COLUMNS = (
    "job_id, batch_id, type, state, payload, attempts, max_attempts, key, priority,"
    " result, error, traceback, created_at, available_at, cost"
)
_PENDING = JobState.PENDING.value  # where every job starts
_NO_LEASE = "lease_owner = NULL, lease_expires = NULL"
_IN_JSON = "IN (SELECT value FROM json_each(?))"
_BATCH_COLUMNS = "batch_id, type, created_at, options"

_INSERT_JOB = (
    "INSERT INTO jobs (job_id, batch_id, type, state, payload, max_attempts, key, priority,"
    " created_at, available_at, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_CLAIM = f"""
UPDATE jobs SET state = {_target(JobEvent.CLAIM)}, attempts = attempts + 1,
    lease_owner = :owner, lease_expires = :expires
WHERE seq IN (
    SELECT seq FROM jobs
    WHERE batch_id = :batch_id AND {_guard(JobEvent.CLAIM)} AND available_at <= :now
    ORDER BY priority DESC, seq LIMIT :limit)
RETURNING priority, seq, {_JOB_COLUMNS}
"""
# One statement per event; ``:state`` comes from the lifecycle table.
_APPLY = {
    event: f"UPDATE jobs SET state = :state, {columns}, {_NO_LEASE}"
    f" WHERE seq = :seq AND {_guard(event)}"
    for event, columns in {
        JobEvent.COMPLETE: "result = :result, error = NULL, traceback = NULL",
        JobEvent.FAIL: "error = :error, traceback = :traceback",
        JobEvent.RETRY_LATER: "error = :error, traceback = :traceback, available_at = :retry_at",
        JobEvent.RELEASE: "attempts = MAX(attempts - :refund, 0), error = COALESCE(:error, error)",
    }.items()
}
# The jobs some outcome may move, among those named.
_HELD = f"""
SELECT seq, job_id, state, attempts, max_attempts FROM jobs
WHERE job_id {_IN_JSON} AND {_guard(*_APPLY)}
"""
_RENEW = f"UPDATE jobs SET lease_expires = ? WHERE lease_owner = ? AND {_guard(JobEvent.EXPIRE)}"
_RECOVER = f"""
UPDATE jobs SET state = {_target(JobEvent.EXPIRE)}, attempts = MAX(attempts - 1, 0), {_NO_LEASE}
WHERE lease_owner IS NOT NULL AND lease_expires <= ? AND {_guard(JobEvent.EXPIRE)}
"""
_REQUEUE = f"""
UPDATE jobs SET state = {_target(JobEvent.REQUEUE)}, attempts = 0, error = NULL,
    traceback = NULL, result = NULL, available_at = ?
WHERE batch_id = ? AND {_guard(JobEvent.REQUEUE)}
"""
_NEXT_DUE = f"SELECT MIN(available_at) FROM jobs WHERE batch_id = ? AND {_guard(JobEvent.CLAIM)}"
# Counting per batch walks the claim index instead of the whole table.
_QUEUE_LENGTH = (
    "SELECT COUNT(*) FROM jobs WHERE batch_id IN (SELECT batch_id FROM batches)"
    f" AND state = '{_PENDING}'"
)
_MARK_RUNNING = (
    "INSERT INTO running VALUES (?, ?, ?) ON CONFLICT (batch_id)"
    " DO UPDATE SET owner = excluded.owner, since = excluded.since"
)


@contextlib.contextmanager
def unavailable_on_sqlite_errors(path: str) -> Iterator[None]:
    """The one place where SQLite's failures become ``StoreUnavailable``."""
    try:
        yield
    except _BUGS:
        raise
    except sqlite3.DatabaseError as exc:
        _log.error("sqlite store %r unavailable: %s", path, exc)
        raise StoreUnavailable(f"sqlite store {path!r}: {exc}") from exc


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool) -> Iterator[None]:
    """One transaction, committed at the end and rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # Some errors (a full disk among them) make SQLite roll back by itself.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def connect(path: str, busy_timeout_seconds: float) -> sqlite3.Connection:
    """Open ``path`` in WAL mode and create the schema if it is missing."""
    with unavailable_on_sqlite_errors(path):
        conn = sqlite3.connect(
            path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(SCHEMA)
            _add_cost_column(conn)
            conn.executescript(_sqlite_limits.SCHEMA)
        except BaseException:
            conn.close()
            raise
    return conn


def _add_cost_column(conn: sqlite3.Connection) -> None:
    """Files written before jobs had a cost get the column (every job costs 1)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    if "cost" not in columns:
        conn.execute("ALTER TABLE jobs ADD COLUMN cost REAL NOT NULL DEFAULT 1")


def _job(row: Sequence[Any]) -> JobRecord:
    job_id, batch_id, type_, state, payload, attempts, max_attempts = row[:7]
    key, priority, result, error, traceback, created_at, available_at, cost = row[7:]
    return JobRecord(
        job_id=job_id,
        batch_id=batch_id,
        type=type_,
        state=_STATES[state],
        payload=_json.load(payload),
        attempts=attempts,
        max_attempts=max_attempts,
        key=key,
        priority=priority,
        result=None if result is None else _json.load(result),
        error=error,
        traceback=traceback,
        created_at=created_at,
        available_at=available_at,
        cost=cost,
    )


def _batch(row: Sequence[Any], counts: Counts) -> BatchRecord:
    batch_id, type_, created_at, options = row
    return BatchRecord(
        batch_id=batch_id,
        type=type_,
        created_at=created_at,
        options=_json.load(options),
        counts=counts,
    )


def _require_batch(conn: sqlite3.Connection, batch_id: str) -> None:
    if conn.execute("SELECT 1 FROM batches WHERE batch_id = ?", (batch_id,)).fetchone() is None:
        raise BatchNotFound(f"no batch {batch_id!r}")


def _counts(conn: sqlite3.Connection, batch_id: str) -> Counts:
    rows = conn.execute(
        "SELECT state, COUNT(*) FROM jobs WHERE batch_id = ? GROUP BY state", (batch_id,)
    )
    return Counts(**dict(rows.fetchall()))


def create_batch(
    conn: sqlite3.Connection, now: float, batch_id: str, type_: str, options: dict[str, Any]
) -> BatchRecord:
    sql = "INSERT INTO batches VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
    if conn.execute(sql, (batch_id, type_, now, _json.dump(options))).rowcount == 0:
        raise BatchExists(f"batch {batch_id!r} already exists")
    return BatchRecord(batch_id=batch_id, type=type_, created_at=now, options=options)


def get_batch(conn: sqlite3.Connection, now: float, batch_id: str) -> BatchRecord:
    sql = f"SELECT {_BATCH_COLUMNS} FROM batches WHERE batch_id = ?"
    row = conn.execute(sql, (batch_id,)).fetchone()
    if row is None:
        raise BatchNotFound(f"no batch {batch_id!r}")
    return _batch(row, _counts(conn, batch_id))


def list_batches(conn: sqlite3.Connection, now: float) -> list[BatchRecord]:
    counts: dict[str, dict[str, int]] = {}
    grouped = "SELECT batch_id, state, COUNT(*) FROM jobs GROUP BY batch_id, state"
    for batch_id, state, n in conn.execute(grouped):
        counts.setdefault(batch_id, {})[state] = n
    rows = conn.execute(f"SELECT {_BATCH_COLUMNS} FROM batches ORDER BY created_at, rowid")
    return [_batch(row, Counts(**counts.get(row[0], {}))) for row in rows]


def delete_batch(conn: sqlite3.Connection, now: float, batch_id: str) -> None:
    if conn.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,)).rowcount == 0:
        raise BatchNotFound(f"no batch {batch_id!r}")
    conn.execute("DELETE FROM jobs WHERE batch_id = ?", (batch_id,))
    conn.execute("DELETE FROM running WHERE batch_id = ?", (batch_id,))


def add_jobs(
    conn: sqlite3.Connection, now: float, batch_id: str, jobs: Sequence[NewJob]
) -> AddResult:
    _require_batch(conn, batch_id)
    keys = sorted({job.key for job in jobs if job.key is not None})
    sql = f"SELECT key FROM jobs WHERE batch_id = ? AND key {_IN_JSON}"
    taken = {key for (key,) in conn.execute(sql, (batch_id, _json.dump(keys)))}
    rows = []
    for job in jobs:
        if job.key is not None:
            if job.key in taken:
                continue
            taken.add(job.key)
        due = now + max(job.delay_seconds, 0.0)
        row = (uuid.uuid4().hex, batch_id, job.type, _PENDING, _json.dump(job.payload))
        rows.append((*row, job.max_attempts, job.key, job.priority, now, due, job.cost))
    conn.executemany(_INSERT_JOB, rows)
    job_ids = tuple(row[0] for row in rows)
    return AddResult(enqueued=len(rows), duplicates=len(jobs) - len(rows), job_ids=job_ids)


def claim_jobs(
    conn: sqlite3.Connection, now: float, batch_id: str, limit: int, owner: str, lease: float
) -> list[JobRecord]:
    params = {"batch_id": batch_id, "now": now, "limit": limit}
    rows = conn.execute(_CLAIM, {**params, "owner": owner, "expires": now + lease}).fetchall()
    rows.sort(key=lambda row: (-row[0], row[1]))  # RETURNING has no order of its own
    return [_job(row[2:]) for row in rows]


def next_due_at(conn: sqlite3.Connection, now: float, batch_id: str) -> float | None:
    due: float | None = conn.execute(_NEXT_DUE, (batch_id,)).fetchone()[0]
    return due


def _plan(outcome: Outcome, attempts: int, max_attempts: int) -> tuple[JobEvent, dict[str, Any]]:
    """What an outcome means for an active job, with its statement's parameters."""
    if isinstance(outcome, Complete):
        return JobEvent.COMPLETE, {"result": _json.dump(outcome.result)}
    if isinstance(outcome, Fail):
        failure = {"error": outcome.error, "traceback": outcome.traceback}
        if outcome.retry_at is None:
            return JobEvent.FAIL, failure
        return JobEvent.RETRY_LATER, {**failure, "retry_at": outcome.retry_at}
    if outcome.refund_attempt:
        return JobEvent.RELEASE, {"refund": 1, "error": None}
    if attempts >= max_attempts:
        return JobEvent.FAIL, {"error": outcome.error, "traceback": None}
    return JobEvent.RELEASE, {"refund": 0, "error": outcome.error}


def apply(
    conn: sqlite3.Connection, now: float, outcomes: Sequence[Outcome]
) -> dict[str, JobState]:
    first: dict[str, Outcome] = {}
    for outcome in outcomes:  # the first outcome for a job moves it out of active
        first.setdefault(outcome.job_id, outcome)
    held = conn.execute(_HELD, (_json.dump(list(first)),)).fetchall()
    by_event: dict[JobEvent, list[dict[str, Any]]] = {}
    states: dict[str, JobState] = {}
    for seq, job_id, state, attempts, max_attempts in held:
        event, params = _plan(first[job_id], attempts, max_attempts)
        target = _MOVES.get((state, event))
        if target is None:  # not an outcome this job's state allows
            continue
        states[job_id] = target
        params.update(seq=seq, state=target.value)
        by_event.setdefault(event, []).append(params)
    for event, rows in by_event.items():
        conn.executemany(_APPLY[event], rows)
    return states


def counts(conn: sqlite3.Connection, now: float, batch_id: str) -> Counts:
    _require_batch(conn, batch_id)
    return _counts(conn, batch_id)


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
    _require_batch(conn, batch_id)
    where, params = "batch_id = ? AND seq > ?", [batch_id, after]
    if state is not None:
        where, params = f"{where} AND state = ?", [*params, state.value]
    sql = f"SELECT seq, {_JOB_COLUMNS} FROM jobs WHERE {where} ORDER BY seq LIMIT ?"
    rows = conn.execute(sql, (*params, limit + 1)).fetchall()
    next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
    return JobPage(jobs=tuple(_job(row[1:]) for row in rows[:limit]), next_cursor=next_cursor)


def retry_failed(conn: sqlite3.Connection, now: float, batch_id: str) -> int:
    _require_batch(conn, batch_id)
    return conn.execute(_REQUEUE, (now, batch_id)).rowcount


def renew_leases(conn: sqlite3.Connection, now: float, owner: str, lease: float) -> int:
    return conn.execute(_RENEW, (now + lease, owner)).rowcount


def recover_expired_leases(conn: sqlite3.Connection, now: float) -> int:
    return conn.execute(_RECOVER, (now,)).rowcount


def mark_running(conn: sqlite3.Connection, now: float, batch_id: str, owner: str) -> None:
    _require_batch(conn, batch_id)
    conn.execute(_MARK_RUNNING, (batch_id, owner, now))


def clear_running(conn: sqlite3.Connection, now: float, batch_id: str) -> None:
    conn.execute("DELETE FROM running WHERE batch_id = ?", (batch_id,))


def running_batches(conn: sqlite3.Connection, now: float) -> dict[str, str]:
    return dict(conn.execute("SELECT batch_id, owner FROM running ORDER BY since, rowid"))


def ping(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("SELECT 1").fetchone()
