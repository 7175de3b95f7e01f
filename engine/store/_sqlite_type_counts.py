"""The SQLite store's jobs per type and state: counters kept by triggers.

Design notes
------------
``type_counts`` holds one row per (type, state) with its number of jobs.
Triggers on ``jobs`` keep it as jobs are inserted, change state and are
deleted, in the same transaction as the change, so every path that moves
a job (claims, outcomes, follow-ups, retries, cancels, recoveries, deleted
batches) keeps it right without knowing of it, and reading it costs one
row per type and state, never a scan of jobs. A job's type never changes.

A move, what every claim and outcome does to each job, is the hot case:
its trigger is one ``UPDATE`` of the two rows (old state, new state),
which needs the new state's row to exist. So a type has a row for every
state from its first job on: the first row of a type (inserted by the
insert trigger's upsert) makes the others, at 0, by a trigger on
``type_counts`` itself, and every open adds the rows of any state the
file's types lack (a state new to this version). Reads skip rows at 0.

``install`` runs in the schema's migration, in its write transaction. A
file made before the table gets it filled from one ``GROUP BY`` of the
jobs. A file whose triggers are another version's (stored SQL differing
from ``_TRIGGERS``) gets them replaced, under the same names, so a file
never holds two triggers counting one change.
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

_STATE_ROWS = " UNION ALL ".join(f"SELECT '{state.value}' AS state" for state in JobState)
# Every type's row for every state, at 0 where it has none.
_COMPLETE = (
    "INSERT OR IGNORE INTO type_counts SELECT t.type, s.state, 0"
    f" FROM (SELECT DISTINCT type FROM type_counts) AS t, ({_STATE_ROWS}) AS s"
)

#: Name -> statement. A trigger's stored SQL is its statement as written,
#: which is how ``install`` tells another version's apart.
_TRIGGERS = {
    "type_counts_insert": "CREATE TRIGGER type_counts_insert AFTER INSERT ON jobs BEGIN"
    " INSERT INTO type_counts (type, state, n) VALUES (NEW.type, NEW.state, 1)"
    " ON CONFLICT (type, state) DO UPDATE SET n = n + 1; END",
    "type_counts_delete": "CREATE TRIGGER type_counts_delete AFTER DELETE ON jobs BEGIN"
    " UPDATE type_counts SET n = n - 1 WHERE type = OLD.type AND state = OLD.state; END",
    "type_counts_move": "CREATE TRIGGER type_counts_move AFTER UPDATE OF state ON jobs"
    " WHEN OLD.state IS NOT NEW.state BEGIN"
    " UPDATE type_counts SET n = n + iif(state = NEW.state, 1, -1)"
    " WHERE type = NEW.type AND state IN (OLD.state, NEW.state); END",
    # A type's first row (the only one inserted with n > 0) makes its others.
    "type_counts_new_type": "CREATE TRIGGER type_counts_new_type AFTER INSERT ON type_counts"
    " WHEN NEW.n > 0 BEGIN"
    f" INSERT OR IGNORE INTO type_counts SELECT NEW.type, s.state, 0 FROM ({_STATE_ROWS}) AS s;"
    " END",
}

_READ = "SELECT type, state, n FROM type_counts WHERE n > 0"


def install(conn: sqlite3.Connection) -> None:
    """Create the table (filled from the jobs there are) unless the file
    has it, give every type a row for every state, and create or replace
    the triggers; inside the caller's write transaction."""
    exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'type_counts'"
    if conn.execute(exists).fetchone() is None:
        conn.execute(_TABLE)
        conn.execute(_FILL)
    triggers = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
    stored = dict(conn.execute(triggers).fetchall())
    for name, statement in _TRIGGERS.items():
        if stored.get(name) != statement:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
            conn.execute(statement)
    conn.execute(_COMPLETE)


def counts_by_type(conn: sqlite3.Connection, now: float) -> dict[str, Counts]:
    """Jobs per type and state, over every batch; a type with no job is absent."""
    per_type: dict[str, dict[str, int]] = {}
    for type_name, state, n in conn.execute(_READ):
        per_type.setdefault(type_name, {})[JobState(state).value] = n
    return {type_name: Counts(**states) for type_name, states in sorted(per_type.items())}
