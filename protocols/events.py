"""Subscriber events: what WebSocket and SSE clients see, and how it is framed.

Design notes
------------
An ``Event`` is a name, an engine-wide ``seq`` and a ``data`` object that
always holds ``batchId``. Sequence numbers start at 1, so ``resumeFrom: 0``
and ``Last-Event-ID: 0`` both mean "everything still retained". The same
event is framed two ways: a WebSocket text frame ``{"event", "seq",
"data"}`` and an SSE chunk ``id:``/``event:``/``data:`` whose data is one
line of JSON (orjson never writes a raw newline, so one ``data:`` line is
always enough). An event is immutable once built, ``data`` included, since
one instance sits in the replay ring and goes out to every subscriber.

``EVENT_BY_TAG`` is the contract's mapping from child IPC messages (by their
wire tag) to event names. It says which event a message *becomes*; the data
comes from the builders below and from the engine's view of the batch (a
``processing:progress`` carries the batch's ``total``, which the child does
not know; a ``done`` carries the run's totals), not from copying the message.

A WebSocket client steers its subscription with three control messages, each
an object with exactly one key: ``{"subscribe": [ids]}``,
``{"unsubscribe": [ids]}`` and ``{"resumeFrom": seq}``. Their classes name
their single field after that key, so the shared converter frames them with
no special case; ``parse_control`` only has to pick the class.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping  # at run time: the converter reads field types
from typing import Any, TypeVar

import attrs
import cattrs
import orjson

from protocols import ipc
from protocols.api import BATCH_ID_PATTERN
from protocols.codec import CONVERTER, describe_error, invalid_field, json_kind
from protocols.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DONE",
    "ERROR",
    "EVENT_BY_TAG",
    "EVENT_NAMES",
    "JOB_PROGRESS",
    "JOB_RETRYING",
    "PROCESSING_PROGRESS",
    "PROCESSING_STARTED",
    "ControlMessage",
    "Event",
    "ResumeFrom",
    "Subscribe",
    "Unsubscribe",
    "control_frame",
    "done_data",
    "error_data",
    "event_name",
    "job_progress_data",
    "parse_control",
    "parse_ws_frame",
    "progress_data",
    "sse_frame",
    "started_data",
    "ws_frame",
]

T = TypeVar("T")

PROCESSING_STARTED = "processing:started"
PROCESSING_PROGRESS = "processing:progress"
JOB_PROGRESS = "job:progress"
DONE = "done"
ERROR = "error"
#: Beyond the contract's mapping: a job failed and runs again after a
#: backoff. It is not terminal (the job's one terminal ``job:progress``
#: comes later), so clients that only count terminal events ignore it.
JOB_RETRYING = "job:retrying"

EVENT_NAMES = frozenset({PROCESSING_STARTED, PROCESSING_PROGRESS, JOB_PROGRESS, DONE, ERROR})

#: Child message tag (``ipc.CHILD_MESSAGE_TAGS``) → event name. Tags missing
#: here (``ready``, ``job-interrupted``) are bookkeeping between engine and
#: child, and no subscriber sees them.
EVENT_BY_TAG: Mapping[str, str] = types.MappingProxyType(
    {
        "started": PROCESSING_STARTED,
        "progress": PROCESSING_PROGRESS,
        "job-progress": JOB_PROGRESS,
        "done": DONE,
        "error": ERROR,
    }
)

#: Event names go into SSE ``event:`` lines verbatim, so a name can never
#: hold a line break; this alphabet covers every name of the contract.
_EVENT_NAME = re.compile(r"[A-Za-z0-9:._-]{1,64}")


def event_name(message: ipc.ChildMessage) -> str | None:
    """The event ``message`` becomes, or ``None`` if subscribers never see it."""
    return EVENT_BY_TAG.get(ipc.CHILD_MESSAGE_TAGS[type(message)])


# --- events -------------------------------------------------------------------


def _read_only(data: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(data))


def _valid_name(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if _EVENT_NAME.fullmatch(value) is None:
        raise invalid_field(
            attribute, f"must be 1 to 64 of A-Z a-z 0-9 : . _ -, got {value!r:.80}"
        )


def _positive(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise invalid_field(attribute, f"must be at least 1, got {value}")


def _has_batch_id(
    instance: object, attribute: attrs.Attribute[Any], value: Mapping[str, Any]
) -> None:
    if not isinstance(value.get("batchId"), str):
        raise invalid_field(attribute, "must hold a string batchId")


@attrs.frozen(kw_only=True)
class Event:
    """One event as subscribers receive it; ``data`` is copied into a read-only view."""

    event: str = attrs.field(validator=_valid_name)
    seq: int = attrs.field(validator=_positive)
    data: Mapping[str, Any] = attrs.field(converter=_read_only, validator=_has_batch_id)


def ws_frame(event: Event) -> str:
    """``event`` as a WebSocket text frame: ``{"event", "seq", "data"}``.

    Raises:
        LocalProtocolError: ``data`` holds something JSON cannot carry.
    """
    return _dumps(CONVERTER.unstructure(event), event).decode()


def sse_frame(event: Event) -> bytes:
    """``event`` as one Server-Sent Events chunk, blank line included.

    Raises:
        LocalProtocolError: ``data`` holds something JSON cannot carry.
    """
    data = _dumps(CONVERTER.unstructure(event)["data"], event)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.event.encode(), data)


def parse_ws_frame(raw: str | bytes) -> Event:
    """The event a WebSocket text frame carries (the client's side of ``ws_frame``).

    Raises:
        RemoteProtocolError: the frame is not JSON or not a valid event.
    """
    return _structure(_load(raw, "event"), Event, "event")


def _dumps(value: Any, event: Event) -> bytes:
    try:
        return orjson.dumps(value)
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"cannot encode {event.event} #{event.seq}: {exc}") from exc


def _load(raw: str | bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"{what} is not JSON: {exc}") from exc


def _structure(value: Any, cls: type[T], what: str) -> T:
    try:
        return CONVERTER.structure(value, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise RemoteProtocolError(f"invalid {what}: {'; '.join(describe_error(exc))}") from exc


# --- data of each event -------------------------------------------------------


def started_data(batch_id: str) -> dict[str, Any]:
    """``processing:started``: a child took the batch."""
    return {"batchId": batch_id}


def progress_data(batch_id: str, *, completed: int, failed: int, total: int) -> dict[str, Any]:
    """``processing:progress``: the batch's finished jobs out of ``total``."""
    return {"batchId": batch_id, "completed": completed, "failed": failed, "total": total}


def job_progress_data(
    batch_id: str,
    *,
    job_id: str,
    status: ipc.JobStatus,
    progress: float | None = None,
    error: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``job:progress``: one job became active, moved on, or finished.

    ``progress`` is sent only while the job is active (0 until the handler
    reports any), ``error`` only once it failed; ``extra`` adds fields such
    as the job's ``type``, ``attempt`` and ``durationMs``.
    """
    data: dict[str, Any] = {"batchId": batch_id, "jobId": job_id, "status": status.value}
    if status is ipc.JobStatus.ACTIVE:
        data["progress"] = 0.0 if progress is None else progress
    elif status is ipc.JobStatus.FAILED:
        data["error"] = error
    return _merge(data, extra)


def done_data(batch_id: str, *, completed: int, failed: int, **extra: Any) -> dict[str, Any]:
    """``done``: the run is over; ``extra`` adds fields such as a ``reason``.

    Raises:
        ValueError: ``extra`` would overwrite ``batchId``, ``completed`` or ``failed``.
    """
    return _merge({"batchId": batch_id, "completed": completed, "failed": failed}, extra)


def error_data(batch_id: str, *, error: str, **extra: Any) -> dict[str, Any]:
    """``error``: the run ended abnormally; ``error`` says why, for people;
    ``extra`` adds fields such as ``restarting``.

    Raises:
        ValueError: ``extra`` would overwrite ``batchId`` or ``error``.
    """
    return _merge({"batchId": batch_id, "error": error}, extra)


def _merge(data: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    clash = data.keys() & extra.keys()
    if clash:
        raise ValueError(f"extra fields would overwrite {sorted(clash)}")
    return data | dict(extra)


# --- client → server control messages -----------------------------------------


def _batch_ids(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for batch_id in value:
        if BATCH_ID_PATTERN.fullmatch(batch_id) is None:
            raise invalid_field(attribute, f"holds {batch_id!r:.140}, which is not a batch id")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise invalid_field(attribute, f"must be at least 0, got {value}")


@attrs.frozen(kw_only=True)
class Subscribe:
    """Receive the events of these batches too."""

    subscribe: tuple[str, ...] = attrs.field(validator=_batch_ids)


@attrs.frozen(kw_only=True)
class Unsubscribe:
    """Stop receiving the events of these batches."""

    unsubscribe: tuple[str, ...] = attrs.field(validator=_batch_ids)


@attrs.frozen(kw_only=True)
class ResumeFrom:
    """Replay every retained event with a greater ``seq``, then carry on live."""

    resume_from: int = attrs.field(validator=_non_negative)


ControlMessage = Subscribe | Unsubscribe | ResumeFrom

_CONTROL_BY_KEY: Mapping[str, type[ControlMessage]] = types.MappingProxyType(
    {"subscribe": Subscribe, "unsubscribe": Unsubscribe, "resumeFrom": ResumeFrom}
)


def parse_control(raw: str | bytes) -> ControlMessage:
    """One control message from a WebSocket client.

    Raises:
        RemoteProtocolError: not JSON, not an object with exactly one of
            ``subscribe``, ``unsubscribe`` and ``resumeFrom``, or a value of
            the wrong shape.
    """
    value = _load(raw, "control message")
    keys = sorted(value) if isinstance(value, dict) else []
    if len(keys) != 1 or keys[0] not in _CONTROL_BY_KEY:
        found = f"keys {keys!r:.140}" if isinstance(value, dict) else json_kind(value)
        raise RemoteProtocolError(
            "control message must be an object with exactly one of the keys "
            f"{', '.join(sorted(_CONTROL_BY_KEY))}; got {found}"
        )
    return _structure(value, _CONTROL_BY_KEY[keys[0]], "control message")


def control_frame(message: ControlMessage) -> str:
    """``message`` as a WebSocket text frame (the client's side of ``parse_control``)."""
    return orjson.dumps(CONVERTER.unstructure(message)).decode()
