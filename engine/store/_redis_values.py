"""How the Redis store's values travel: script arguments out, records back.

Script arguments are strings: floats as ``repr`` (read back exactly by
Redis, Lua and Python), optional strings as ``"n"`` or ``"s" + value``,
priorities as the 16-hex-digit ``rank`` that orders the ready set (see
``engine.store._redis_layout``), and JSON through ``engine.store._json``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from engine.store import _json
from engine.store._redis_layout import JOB_FIELDS, RANK_DIGITS
from engine.store.records import (
    BatchRecord,
    Complete,
    Counts,
    Fail,
    JobRecord,
    NewJob,
    Outcome,
)
from protocols.lifecycle import JobState

__all__ = [
    "STATES",
    "batch_record",
    "counts_of",
    "job_record",
    "number",
    "optional",
    "outcome_args",
    "parse_cursor",
    "rank",
]

_PRIORITY_LIMIT = 2**63  # priorities are signed 64-bit, as in SQLite
STATES = {state.value: state for state in JobState}
_NONE = "n"  # an optional string that is absent; present ones travel as "s" + value


def optional(value: str | None) -> str:
    return _NONE if value is None else "s" + value


def number(value: float) -> str:
    return repr(float(value))


def rank(priority: int) -> str:
    if not -_PRIORITY_LIMIT <= priority < _PRIORITY_LIMIT:
        raise OverflowError(f"priority {priority} does not fit in 64 bits")
    return format(_PRIORITY_LIMIT - 1 - priority, f"0{RANK_DIGITS}x")


def job_record(fields: Sequence[Any]) -> JobRecord:
    """A job hash's fields (in ``JOB_FIELDS`` order) as a record.

    Raises:
        StoreError: the fields do not make a job this version can read.
    """
    with _json.reading("job"):
        return _job_record(fields)


def _job_record(fields: Sequence[Any]) -> JobRecord:
    row = dict(zip(JOB_FIELDS, fields, strict=True))
    return JobRecord(
        job_id=row["job_id"],
        batch_id=row["batch"],
        type=row["type"],
        state=STATES[row["state"]],
        payload=_json.load(row["payload"]),
        attempts=int(row["attempts"]),
        max_attempts=int(row["max_attempts"]),
        key=row["key"],
        priority=int(row["priority"]),
        result=None if row["result"] is None else _json.load(row["result"]),
        error=row["error"],
        traceback=row["traceback"],
        created_at=float(row["created_at"]),
        available_at=float(row["available_at"]),
        cost=1.0 if row["cost"] is None else float(row["cost"]),
        started_at=_float_or_none(row["started_at"]),
        finished_at=_float_or_none(row["finished_at"]),
        progress=_float_or_none(row["progress"]),
        timeout_seconds=_float_or_none(row["timeout_seconds"]),
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def counts_of(values: Sequence[int]) -> Counts:
    return Counts(**{state.value: int(n) for state, n in zip(JobState, values, strict=True)})


def batch_record(
    batch_id: str, type_: str, created_at: str, options: str, counts: Any, run_owner: str | None
) -> BatchRecord:
    """A batch's stored fields as a record.

    Raises:
        StoreError: they do not make a batch this version can read.
    """
    with _json.reading("batch"):
        return BatchRecord(
            batch_id=batch_id,
            type=type_,
            created_at=float(created_at),
            options=_json.load(options),
            counts=counts_of(counts),
            run_owner=run_owner,
        )


def new_job_args(job: NewJob, now: float) -> list[str | int]:
    """The ten fields of the scripts' ``insert_job`` for ``job``, added at
    ``now`` under a fresh id."""
    due = number(now + max(job.delay_seconds, 0.0))
    args: list[str | int] = [uuid.uuid4().hex, job.type, _json.dump(job.payload)]
    args += [optional(job.key), rank(job.priority), due, job.max_attempts, str(job.priority)]
    args.append(number(job.cost))
    timeout = job.timeout_seconds
    args.append(optional(None if timeout is None else number(timeout)))
    return args


def follow_up_args(outcomes: Sequence[Outcome], now: float) -> list[str | int]:
    """Per follow-up of each completion: its job's id, its batch, its fields."""
    args: list[str | int] = []
    for outcome in outcomes:
        if isinstance(outcome, Complete):
            for follow_up in outcome.follow_ups:
                args += [outcome.job_id, follow_up.batch_id, *new_job_args(follow_up.job, now)]
    return args


def outcome_args(outcome: Outcome) -> tuple[str, str, str, str, str]:
    if isinstance(outcome, Complete):
        return outcome.job_id, "complete", _json.dump(outcome.result), "", ""
    if isinstance(outcome, Fail):
        traceback = optional(outcome.traceback)
        if outcome.retry_at is None:
            return outcome.job_id, "fail", outcome.error, traceback, ""
        return outcome.job_id, "retry", outcome.error, traceback, number(outcome.retry_at)
    refund = "1" if outcome.refund_attempt else "0"
    due = "" if outcome.retry_at is None else number(outcome.retry_at)
    return outcome.job_id, "release", refund, optional(outcome.error), due


def parse_cursor(cursor: str | None) -> int:
    """The seq after which a page starts; cursors are decimal seqs."""
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdecimal() and len(cursor) <= 18):
        raise ValueError(f"not a cursor of this store: {cursor!r}")
    return int(cursor)
