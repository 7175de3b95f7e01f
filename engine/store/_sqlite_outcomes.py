"""The SQLite store's outcomes: what became of claimed jobs, recorded in
the caller's write transaction (``apply``).

Design notes
------------
``apply`` is a fixed handful of statements whatever the number of jobs:
completions, nearly every job's outcome, go in one ``UPDATE ... FROM
json_each`` of their results; the other outcomes are planned from the
jobs under the owner's lease (one ``SELECT`` of the ids, a JSON
parameter read with ``json_each``) and their updates of one kind go
through one ``executemany``. Every update is guarded by the lifecycle
table (``guard``), as in ``engine.store._sqlite_ops``.

The completions' ``UPDATE`` returns no rows: when it changed as many
rows as there are completions, every one of them moved, which is nearly
always so, and no row per job crosses into Python. When it changed fewer
(a job recovered, cancelled or claimed by another owner meanwhile), it is
rolled back to a savepoint taken just before it and made again with
``RETURNING`` the ids it moves: only this rare case pays for the rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from engine.store import _json
from engine.store._sqlite_ops import NO_LEASE, guard, target, target_state
from engine.store.records import Complete, Fail, Outcome, Release
from protocols.lifecycle import TRANSITIONS, JobEvent, JobState

__all__ = ["apply"]

#: ``lifecycle.TRANSITIONS`` keyed by stored state names, for the per-job loop
#: of ``apply``, where calling ``sources()`` and building enums for each job
#: took a third of the time.
_MOVES = {
    (source.value, event): target
    for source, moves in TRANSITIONS.items()
    for event, target in moves.items()
}


# One statement per event of the other outcomes; ``:state`` comes from the
# lifecycle table.
_APPLY = {
    event: f"UPDATE jobs SET state = :state, {columns}, {NO_LEASE}"
    f" WHERE seq = :seq AND lease_owner = :owner AND {guard(event)}"
    for event, columns in {
        JobEvent.FAIL: "error = :error, traceback = :traceback, finished_at = :now",
        JobEvent.RETRY_LATER: "error = :error, traceback = :traceback, available_at = :retry_at",
        JobEvent.RELEASE: "attempts = MAX(attempts - :refund, 0), error = COALESCE(:error, error),"
        " available_at = COALESCE(:due, available_at)",
    }.items()
}
# Completions, the outcome of nearly every job, in one statement whatever
# their number: ``:results`` is a JSON object of job id -> result text. The
# ``+`` keep the planner on the job id index (one look-up per completion),
# not on the owner's leases.
_COMPLETE_MANY = f"""
UPDATE jobs SET state = {target(JobEvent.COMPLETE)}, result = r.value, error = NULL,
    traceback = NULL, finished_at = :now, {NO_LEASE}
FROM json_each(:results) AS r
WHERE jobs.job_id = r.key AND +jobs.lease_owner = :owner AND +jobs.{guard(JobEvent.COMPLETE)}
"""
_COMPLETE_NAMING = f"{_COMPLETE_MANY} RETURNING jobs.job_id"
_COMPLETED = target_state(JobEvent.COMPLETE)
# The jobs some other outcome may move, among those named: those under the
# owner's lease.
_HELD = f"""
SELECT seq, job_id, state, attempts, max_attempts FROM jobs
WHERE job_id IN (SELECT value FROM json_each(:job_ids)) AND lease_owner = :owner
    AND {guard(*_APPLY)}
"""


def _plan(
    outcome: Fail | Release, attempts: int, max_attempts: int
) -> tuple[JobEvent, dict[str, Any]]:
    """What an outcome other than a completion means for an active job,
    with its statement's parameters."""
    if isinstance(outcome, Fail):
        failure = {"error": outcome.error, "traceback": outcome.traceback}
        if outcome.retry_at is None:
            return JobEvent.FAIL, failure
        return JobEvent.RETRY_LATER, {**failure, "retry_at": outcome.retry_at}
    if outcome.refund_attempt:
        return JobEvent.RELEASE, {"refund": 1, "error": None, "due": outcome.retry_at}
    if attempts >= max_attempts:
        return JobEvent.FAIL, {"error": outcome.error, "traceback": None}
    return JobEvent.RELEASE, {"refund": 0, "error": outcome.error, "due": outcome.retry_at}


def apply(
    conn: sqlite3.Connection, now: float, outcomes: Sequence[Outcome], owner: str
) -> dict[str, JobState]:
    """Move each job named in ``outcomes`` that is active under ``owner``'s
    lease by its first outcome: completions in one statement, the others
    one by one; the state each moved job is in now, by id (the others are
    skipped)."""
    first: dict[str, Outcome] = {}
    for outcome in outcomes:  # the first outcome for a job moves it out of active
        first.setdefault(outcome.job_id, outcome)
    states: dict[str, JobState] = {}
    results = {
        job_id: "null" if outcome.result is None else _json.dump(outcome.result)
        for job_id, outcome in first.items()
        if isinstance(outcome, Complete)
    }
    if results:
        completing = {"results": _json.dump(results), "now": now, "owner": owner}
        conn.execute("SAVEPOINT completions")
        if conn.execute(_COMPLETE_MANY, completing).rowcount == len(results):
            states = dict.fromkeys(results, _COMPLETED)
        else:  # some were not ours to complete: which were?
            conn.execute("ROLLBACK TO completions")
            for (job_id,) in conn.execute(_COMPLETE_NAMING, completing).fetchall():
                states[job_id] = _COMPLETED
        conn.execute("RELEASE completions")
    others = {
        job_id: outcome for job_id, outcome in first.items() if isinstance(outcome, Fail | Release)
    }
    if not others:
        return states
    held = conn.execute(_HELD, {"job_ids": _json.dump(list(others)), "owner": owner}).fetchall()
    by_event: dict[JobEvent, list[dict[str, Any]]] = {}
    for seq, job_id, state, attempts, max_attempts in held:
        event, params = _plan(others[job_id], attempts, max_attempts)
        target = _MOVES.get((state, event))
        if target is None:  # not an outcome this job's state allows
            continue
        states[job_id] = target
        params.update(seq=seq, state=target.value, owner=owner, now=now)
        by_event.setdefault(event, []).append(params)
    for event, rows in by_event.items():
        conn.executemany(_APPLY[event], rows)
    return states
