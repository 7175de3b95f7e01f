"""The SQLite store's jobs per type and state: counters kept by triggers.

Design notes
------------
``type_counts`` holds one row per (type, state) with its number of jobs.
Triggers on ``jobs`` keep it as jobs are inserted, change state and are
deleted, in the same transaction as the change, so every path that moves
a job (claims, outcomes, follow-ups, retries, cancels, recoveries, deleted
batches) keeps it right without knowing of it, and reading it costs one
row per type and state, never a scan of jobs. A job's type never changes.

A file made before the table gets it in ``install`` (run by the schema's
migration, in its write transaction): the table is filled from one
``GROUP BY`` of the jobs, then the triggers keep it.

The triggers cost about 3 µs a job on the hot path (a claim and a
completion, both moves). Measured against them on bursts of 200: a move
as one ``UPDATE`` of both rows (``state IN (old, new)``, every type given
a row per state up front) was slower, two plain ``UPDATE``s were no
faster, and one row per type with a column per state saved under 1 µs a
job: none worth a migration.
"""

from __future__ import annotations

import sqlite3

from engine.store.records import Counts
from protocols.lifecycle import JobState

__all__ = ["counts_by_type", "install"]

_TABLE = """
CREATE TABLE type_counts (
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (type, state)
) WITHOUT ROWID
"""

_FILL = "INSERT INTO type_counts SELECT type, state, COUNT(*) FROM jobs GROUP BY type, state"

_ONE_MORE = """
    INSERT INTO type_counts (type, state, n) VALUES (NEW.type, NEW.state, 1)
    ON CONFLICT (type, state) DO UPDATE SET n = n + 1;
"""
_ONE_FEWER = """
    UPDATE type_counts SET n = n - 1 WHERE type = OLD.type AND state = OLD.state;
"""

_TRIGGERS = (
    f"CREATE TRIGGER IF NOT EXISTS type_counts_insert AFTER INSERT ON jobs BEGIN {_ONE_MORE} END",
    f"CREATE TRIGGER IF NOT EXISTS type_counts_delete AFTER DELETE ON jobs BEGIN {_ONE_FEWER} END",
    "CREATE TRIGGER IF NOT EXISTS type_counts_move AFTER UPDATE OF state ON jobs"
    f" WHEN OLD.state IS NOT NEW.state BEGIN {_ONE_FEWER} {_ONE_MORE} END",
)

_READ = "SELECT type, state, n FROM type_counts WHERE n > 0"


def install(conn: sqlite3.Connection) -> None:
    """Create the table (filled from the jobs there are) and its triggers,
    unless the file has them; inside the caller's write transaction."""
    exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'type_counts'"
    if conn.execute(exists).fetchone() is None:
        conn.execute(_TABLE)
        conn.execute(_FILL)
    for trigger in _TRIGGERS:
        conn.execute(trigger)


def counts_by_type(conn: sqlite3.Connection, now: float) -> dict[str, Counts]:
    """Jobs per type and state, over every batch; a type with no job is absent."""
    per_type: dict[str, dict[str, int]] = {}
    for type_name, state, n in conn.execute(_READ):
        per_type.setdefault(type_name, {})[JobState(state).value] = n
    return {type_name: Counts(**states) for type_name, states in sorted(per_type.items())}
