"""The SQLite store's schema, and the migration of files made before it.

Design notes
------------
``create_schema`` runs on every open. ``SCHEMA`` is idempotent (``IF NOT
EXISTS`` throughout), so a new file gets every table and an existing one
the tables it lacks. What ``IF NOT EXISTS`` cannot express is done by
``_migrate`` in one write transaction, so two processes opening an old file
at once cannot both migrate it:

* ``batches.starts_itself`` (``base.starts_by_itself`` of the options, fixed
  at creation, so ``startable_batches`` filters on a column rather than on
  JSON) is added to an older ``batches`` table and filled in from the
  stored options;
* ``jobs.cost`` is added to an older ``jobs`` table (every job then costs 1),
  and ``started_at``, ``finished_at``, ``progress``, ``timeout_seconds``
  and ``cancel_requested`` (all NULL: unknown, none) to one that lacks them;
* the ``running`` table of files made before run ownership becomes rows of
  ``runs``, handed over (owner NULL), so the next engine resumes those runs
  as the old one would have;
* ``type_counts``, the jobs per type and state, and the triggers that keep
  it, are added and filled in from the jobs (``_sqlite_type_counts``).

Indexes: ``jobs_claim`` walks a batch's pending jobs in the order they are
handed out, and counts jobs per state. ``jobs_batch`` serves pages in
``seq`` order (index entries end with the rowid, which is ``seq``); batch
and seq never change, so claims and outcomes do not pay for it.
``jobs_lease`` holds only jobs with a lease, i.e. active ones, so it stays
small. ``jobs_key`` makes idempotency keys unique per batch. ``runs_owner``
finds an engine's run records (renewal, recovery).
"""

from __future__ import annotations

import sqlite3

from engine.store import _json, _sqlite_type_counts
from engine.store.records import starts_by_itself

__all__ = ["SCHEMA", "create_schema"]

SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    created_at REAL NOT NULL,
    options TEXT NOT NULL,
    starts_itself INTEGER NOT NULL DEFAULT 0
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
    cost REAL NOT NULL DEFAULT 1,
    started_at REAL,
    finished_at REAL,
    progress REAL,
    timeout_seconds REAL,
    cancel_requested INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_key ON jobs (batch_id, key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (batch_id, state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS jobs_batch ON jobs (batch_id);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_owner, lease_expires)
    WHERE lease_owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS runs (
    batch_id TEXT PRIMARY KEY,
    owner TEXT,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_owner ON runs (owner) WHERE owner IS NOT NULL;
CREATE TABLE IF NOT EXISTS engines (
    engine_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    boot_id TEXT NOT NULL,
    max_batches INTEGER NOT NULL,
    running_batches TEXT NOT NULL,
    last_seen REAL NOT NULL,
    expires_at REAL NOT NULL
);
COMMIT;
"""


def create_schema(conn: sqlite3.Connection) -> None:
    """Create what the file lacks and migrate what is older (module notes)."""
    conn.executescript(SCHEMA)
    conn.execute("BEGIN IMMEDIATE")
    try:
        _migrate(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection) -> None:
    job_columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    if "cost" not in job_columns:
        conn.execute("ALTER TABLE jobs ADD COLUMN cost REAL NOT NULL DEFAULT 1")
    for column in ("started_at", "finished_at", "progress", "timeout_seconds"):
        if column not in job_columns:
            conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} REAL")
    if "cancel_requested" not in job_columns:
        conn.execute("ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(batches)")}
    if "starts_itself" not in columns:
        conn.execute("ALTER TABLE batches ADD COLUMN starts_itself INTEGER NOT NULL DEFAULT 0")
        flagged = [
            (batch_id,)
            for batch_id, options in conn.execute("SELECT batch_id, options FROM batches")
            if starts_by_itself(_json.load(options))
        ]
        conn.executemany("UPDATE batches SET starts_itself = 1 WHERE batch_id = ?", flagged)
    old = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'running'"
    if conn.execute(old).fetchone() is not None:
        conn.execute("INSERT OR IGNORE INTO runs SELECT batch_id, NULL, since FROM running")
        conn.execute("DROP TABLE running")
    _sqlite_type_counts.install(conn)
