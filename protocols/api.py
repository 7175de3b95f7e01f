"""HTTP request and response bodies of the API, and the one way to decode them.

Design notes
------------
Every body is a frozen attrs class that the shared converter turns into JSON
and back: ``camelCase`` on the wire, unknown keys refused, no coercion between
JSON kinds (``"3"`` is not a priority, ``1.5`` is not a count). Bodies are
checked once, here, by validators, so a ``JobSpec`` that exists is a
``JobSpec`` the engine can store.

``decode_body`` is where bad input stops: anything that is not JSON or not
the expected shape becomes ``InvalidBody``, whose lines name the wire path of
each fault (``expected an integer, got a string @ $.jobs[2].priority``). An
HTTP layer answers it with 400 and ``str(exc)`` as the message.

Decisions:

* A batch's ``type`` is required and non-empty, so every job has a type: its
  own, or the batch's. ``AddJobs`` carries no default: its jobs fall back to
  the type of the batch they join.
* ``jobs`` may be empty, in both ``CreateBatch`` and ``AddJobs``. A batch is a
  named container that can be created first and filled later, and adding no
  jobs is a no-op that answers ``enqueued: 0``, not a mistake worth a 400.
* Priorities are bounded (see ``MAX_PRIORITY``), delays must be finite and
  non-negative, keys and type names non-empty.
* ``CreateBatch.options`` is open (a caller may keep its own keys there),
  but the two the engine acts on are checked: ``after`` is a list of batch
  ids (at most ``MAX_AFTER``), ``autoStart`` a boolean. A batch naming
  itself in ``after`` is a conflict the engine refuses, not a fault of the
  body's shape.
* Every bound is a validator of ``protocols.bounds``, which also states it
  in JSON Schema: the OpenAPI document is built from these classes.
* Timestamps are timezone-aware datetimes (ISO 8601 with an offset), so a
  client never has to guess the server's zone.
* Responses are decoded just as strictly as requests: a client built from
  these classes notices a server that breaks the contract.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, TypeVar

import attrs
import cattrs
import orjson

from protocols import bounds, jsontext
from protocols.codec import CONVERTER, describe_error
from protocols.errors import InvalidBody, LocalProtocolError
from protocols.job_api import ChildView
from protocols.lifecycle import JobState

__all__ = [
    "BATCH_ID_PATTERN",
    "MAX_AFTER",
    "MAX_KEY_LENGTH",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "AddJobs",
    "BatchList",
    "BatchView",
    "Counts",
    "CreateBatch",
    "EngineView",
    "EnqueueResult",
    "ErrorBody",
    "ErrorDetail",
    "HealthMetrics",
    "HealthStatus",
    "HealthView",
    "JobList",
    "JobSpec",
    "JobView",
    "ProcessResult",
    "ProcessStatus",
    "Requeued",
    "StatusView",
    "TypeList",
    "decode_body",
    "encode_body",
]

T = TypeVar("T")

#: Batch ids appear in URL paths, log prefixes and Redis keys; this alphabet
#: needs no escaping in any of them.
BATCH_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")

#: Highest first, and a backend may fold the priority together with the
#: enqueue time into one double (a Redis sorted-set score), which holds
#: integers exactly only up to 2**53; 2**21 levels either way (the range
#: BullMQ allows) leaves room for that and is more than any queue needs.
MAX_PRIORITY = 2**21
MIN_PRIORITY = -MAX_PRIORITY

#: A flow step waits for at most this many batches: each is read whenever
#: the step is looked at, so the list is bounded like any other input.
MAX_AFTER = 1000

#: Keys are stored and indexed per job; a bound keeps one request from
#: turning the index into a blob store.
MAX_KEY_LENGTH = 1024

ProcessStatus = Literal["started", "already-running", "capacity-reached"]
HealthStatus = Literal["ok", "degraded"]


_ALPHABET = "of A-Z a-z 0-9 . _ : -"
_BATCH_ID = bounds.Text(max_length=128, pattern=BATCH_ID_PATTERN, alphabet=_ALPHABET)
_JOB_TYPE = bounds.JobTypeName()
_AWARE = bounds.Aware()


# --- requests -----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class JobSpec:
    """One job to enqueue: a payload, and optionally its own type, key, priority,
    delay and cost.

    ``key`` makes enqueueing idempotent within a batch: a key the batch
    already holds is counted as a duplicate, not enqueued again. The highest
    ``priority`` is handed out first; a job is not handed out before
    ``delay_seconds`` have passed since it was enqueued. Rate limits count
    ``cost`` (say, the tokens a request will use) instead of one per start.
    """

    payload: Any = None
    type: str | None = attrs.field(default=None, validator=_JOB_TYPE)
    key: str | None = attrs.field(default=None, validator=bounds.Text(max_length=MAX_KEY_LENGTH))
    priority: int = attrs.field(
        default=0, validator=bounds.Whole(minimum=MIN_PRIORITY, maximum=MAX_PRIORITY)
    )
    delay_seconds: float = attrs.field(default=0.0, validator=bounds.Number(minimum=0))
    cost: float = attrs.field(default=1.0, validator=bounds.Number(minimum=0, exclusive=True))
    #: Seconds the job may run, over its type's and the engine's limit.
    timeout_seconds: float | None = attrs.field(
        default=None, validator=bounds.Number(minimum=0, exclusive=True)
    )


@attrs.frozen(kw_only=True)
class CreateBatch:
    """``POST /api/batches``: a new batch, with the default type of its jobs."""

    jobs: tuple[JobSpec, ...]
    type: str = attrs.field(validator=_JOB_TYPE)
    batch_id: str | None = attrs.field(default=None, validator=_BATCH_ID)
    options: dict[str, Any] = attrs.field(
        factory=dict, validator=bounds.FlowOptions(batch_id=_BATCH_ID, max_after=MAX_AFTER)
    )


@attrs.frozen(kw_only=True)
class AddJobs:
    """``POST /api/batches/{batchId}/jobs``: more jobs for an existing batch."""

    jobs: tuple[JobSpec, ...]


# --- responses ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EnqueueResult:
    """What enqueueing did: new jobs, and jobs skipped because their key was taken."""

    batch_id: str
    enqueued: int
    duplicates: int


@attrs.frozen(kw_only=True)
class Counts:
    """Jobs of a batch per state; ``active`` are held by a child right now."""

    pending: int
    active: int
    completed: int
    failed: int


@attrs.frozen(kw_only=True)
class BatchView:
    """One batch, as ``GET /api/batches/{batchId}`` shows it: ``running``
    and ``engine_id`` (the engine running it) are cluster-wide."""

    batch_id: str
    type: str
    running: bool
    engine_id: str | None
    counts: Counts
    created_at: datetime = attrs.field(validator=_AWARE)
    options: dict[str, Any]
    #: The batch's child while it runs on the engine answering, else None.
    child: ChildView | None = None
    #: Seconds until the batch's run finishes its jobs, from its rate limit
    #: and observed pace; ``None`` when idle or not yet known.
    eta_seconds: float | None = None


@attrs.frozen(kw_only=True)
class BatchList:
    """``GET /api/batches``."""

    batches: tuple[BatchView, ...]


@attrs.frozen(kw_only=True)
class JobView:
    """One job, as ``GET /api/batches/{batchId}/jobs`` lists it and
    ``GET /api/jobs/{jobId}`` shows it; ``progress`` is the percentage its
    handler last reported, ``started_at`` its latest start."""

    job_id: str
    batch_id: str
    type: str
    state: JobState
    payload: Any
    attempts: int
    key: str | None
    priority: int
    cost: float = 1.0
    progress: float | None = None
    result: Any
    error: str | None
    created_at: datetime | None = attrs.field(default=None, validator=_AWARE)
    started_at: datetime | None = attrs.field(default=None, validator=_AWARE)
    finished_at: datetime | None = attrs.field(default=None, validator=_AWARE)


@attrs.frozen(kw_only=True)
class JobList:
    """A page of jobs; ``next_cursor`` is ``None`` on the last page."""

    jobs: tuple[JobView, ...]
    next_cursor: str | None


@attrs.frozen(kw_only=True)
class ProcessResult:
    """``POST /api/jobs/process/all/{batchId}``; the HTTP status says the same."""

    status: ProcessStatus
    batch_id: str


@attrs.frozen(kw_only=True)
class EngineView:
    """One live engine of the cluster: ``pid`` is the engine process's own,
    ``last_seen`` its last heartbeat."""

    engine_id: str
    host: str
    pid: int
    running_batches: tuple[str, ...]
    max_batches: int
    last_seen: datetime = attrs.field(validator=_AWARE)


@attrs.frozen(kw_only=True)
class StatusView:
    """``GET /api/status``: what this engine is doing (``engine_id`` is
    its id), and every live engine of the cluster."""

    running_batches: tuple[str, ...]
    active_batches: int
    max_batches: int
    is_shutting_down: bool
    paused: bool
    engine_id: str
    engines: tuple[EngineView, ...]


@attrs.frozen(kw_only=True)
class TypeList:
    """``GET /api/types``: the names of the registered job types, sorted."""

    types: tuple[str, ...]


@attrs.frozen(kw_only=True)
class HealthMetrics:
    """The two numbers ``GET /health`` reports."""

    queue_length: int
    active_workers: int


@attrs.frozen(kw_only=True)
class HealthView:
    """``GET /health``: ``services`` maps a dependency to its state (``"connected"``)."""

    status: HealthStatus
    services: dict[str, str]
    metrics: HealthMetrics


@attrs.frozen(kw_only=True)
class Requeued:
    """``POST /api/batches/{batchId}/retry``: failed jobs put back to pending."""

    requeued: int


@attrs.frozen(kw_only=True)
class ErrorDetail:
    """What went wrong: a stable machine ``code`` and a message for people."""

    code: str
    message: str


@attrs.frozen(kw_only=True)
class ErrorBody:
    """Every error response: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


# --- bytes ↔ bodies -----------------------------------------------------------


def decode_body(raw: bytes | str, cls: type[T]) -> T:
    """Parse and check one body.

    Args:
        raw: the body as received.
        cls: the class it must be (``CreateBatch``, ``BatchView``, ...).

    Returns:
        The decoded, validated body.

    Raises:
        InvalidBody: ``raw`` is not JSON, or not a valid ``cls``; its
            ``errors`` name each fault with its wire path.
    """
    try:
        value = jsontext.load_any(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(f"body is not JSON: {exc} @ $") from exc
    try:
        return CONVERTER.structure(value, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise InvalidBody(*describe_error(exc)) from exc


def encode_body(body: Any) -> bytes:
    """One body as JSON bytes.

    Raises:
        LocalProtocolError: ``body`` holds something JSON cannot carry (a
            payload with an integer beyond 64 bits, an arbitrary object).
    """
    try:
        return jsontext.dumps(CONVERTER.unstructure(body))
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"cannot encode {type(body).__name__}: {exc}") from exc
