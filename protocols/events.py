"""Subscriber events: what WebSocket and SSE clients see, and how it is framed.

Design notes
------------
Each event's data is a frozen attrs class below, and ``EVENT_TYPES`` is the
one table of events: every name a subscriber can see, with its data class.
An ``Event`` is that data stamped with an engine-wide ``seq``; its name
follows from the class of its data, so a name and its data can never
disagree. Publishers make events with ``stamp``: the same checks as the
constructor's, at a fraction of its cost. Every data class holds
``batch_id``. Sequence numbers start at 1, so ``resumeFrom: 0`` and
``Last-Event-ID: 0`` both mean "everything still retained".

Child messages become events as the contract maps them, with a job's facts
split as ``protocols.ipc`` tells them: ``BatchStarted`` → ``processing:started``;
``Progress`` → ``processing:progress``; ``JobStarted`` and ``JobProgress`` →
``job:progress`` (active); ``JobCompleted`` → ``job:progress`` (completed);
``JobFailed`` → ``job:progress`` (failed), or ``job:retrying`` while attempts
remain; ``JobRateLimited`` → ``job:rate-limited``; ``Done`` → ``done`` once
the run has no more work; a crash the engine sees → ``error``. ``Ready``
and ``JobInterrupted`` are bookkeeping that no subscriber sees. The data is
the engine's view, not a copy of the message (``processing:progress``
carries the batch's ``total``, which the child does not know).

A run ends with exactly one ``done`` or one ``error`` that is not
``restarting``; ``ends_run`` is that rule, for every client to share.

How subscribers receive an event (WebSocket and SSE frames) is
``protocols.frames``. An event log shared by several engines stores it as
``stored_frame``: the WebSocket frame without its ``seq``, which the log
assigns when it appends. Every form goes through the one converter, so
field names are camelCase on the wire; fields that exist only in some states
(a job's ``progress`` while active, its ``error`` once failed) are left out
while they are ``None``.

How a WebSocket client steers its subscription is ``protocols.control``.
``CloseCode`` lists every WebSocket close code the server sends and the
client reads.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from protocols import jsontext
from protocols.codec import (
    CONVERTER,
    OMIT_WHEN_DEFAULT,
    at_least_one,
    encode_json,
    invalid_field,
    structure_as,
)
from protocols.errors import RemoteProtocolError
from protocols.lifecycle import JobState

__all__ = [
    "EVENT_TYPES",
    "CloseCode",
    "Event",
    "EventData",
    "JobRetrying",
    "JobUpdate",
    "ProcessingProgress",
    "ProcessingStarted",
    "RateLimitedJob",
    "RunDone",
    "RunError",
    "decode_event",
    "ends_run",
    "parse_stored_frame",
    "stamp",
    "stored_frame",
]


class CloseCode(enum.IntEnum):
    """WebSocket close codes with a meaning here (RFC 6455, section 7.4.1)."""

    GOING_AWAY = 1001  # the server shuts down
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003  # a binary or non-JSON control message
    ABNORMAL_CLOSURE = 1006  # no close frame at all: the connection dropped
    INVALID_PAYLOAD = 1007  # JSON that is not a valid control message
    POLICY_VIOLATION = 1008  # a missing or wrong token
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011  # the server failed; nothing the client did
    TRY_AGAIN_LATER = 1013  # too slow to keep up: resume from the last seq


# --- validators -----------------------------------------------------------------


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise invalid_field(attribute, f"must be at least 0, got {value}")


def _job_status(instance: object, attribute: attrs.Attribute[Any], value: JobState) -> None:
    if value is JobState.PENDING:
        raise invalid_field(attribute, "must be active, completed or failed")


def _while_active(
    instance: JobUpdate, attribute: attrs.Attribute[Any], value: float | None
) -> None:
    if (value is not None) != (instance.status is JobState.ACTIVE):
        raise invalid_field(attribute, "is given while the job is active, and only then")
    if value is not None and not 0.0 <= value <= 100.0:
        raise invalid_field(attribute, f"must be within 0..100, got {value!r}")


def _once_failed(instance: JobUpdate, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if (value is not None) != (instance.status is JobState.FAILED):
        raise invalid_field(attribute, "is given once the job failed, and only then")


def _omitted_when_none(**kwargs: Any) -> Any:
    """A field that is ``None`` unless given, and off the wire while ``None``."""
    return attrs.field(default=None, metadata={OMIT_WHEN_DEFAULT: True}, **kwargs)


# --- data of each event -----------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProcessingStarted:
    """``processing:started``: a child took the batch."""

    batch_id: str


@attrs.frozen(kw_only=True)
class ProcessingProgress:
    """``processing:progress``: the batch's finished jobs out of ``total``,
    and ``eta_seconds`` (null when unknown).

    A snapshot: a subscriber may get fewer than one per job, but always the
    latest counts before ``done``.
    """

    batch_id: str
    completed: int = attrs.field(validator=_non_negative)
    failed: int = attrs.field(validator=_non_negative)
    total: int = attrs.field(validator=_non_negative)
    #: Seconds until the run has finished the batch's jobs, from its rate
    #: limit and observed pace; None when unknown.
    eta_seconds: float | None = None


@attrs.frozen(kw_only=True)
class JobUpdate:
    """``job:progress``: one job became active, moved on, or finished.

    ``progress`` (percent) is given while the job is active, ``error`` once
    it failed; a finished job also says its ``type``, the ``attempt`` that
    finished it and, when its start was seen, ``duration_ms``. The event
    that marks a start carries ``started_at``: the child's wall clock (epoch
    seconds) when the handler started.
    """

    batch_id: str
    job_id: str
    status: JobState = attrs.field(validator=_job_status)
    progress: float | None = _omitted_when_none(validator=_while_active)
    error: str | None = _omitted_when_none(validator=_once_failed)
    type: str | None = _omitted_when_none()
    attempt: int | None = _omitted_when_none()
    duration_ms: float | None = _omitted_when_none()
    started_at: float | None = _omitted_when_none()

    @property
    def finished(self) -> bool:
        """Whether this is the job's one terminal event (completed or failed)."""
        return self.status is not JobState.ACTIVE


@attrs.frozen(kw_only=True)
class JobRetrying:
    """``job:retrying``: the job failed with attempts left; it runs again at
    ``retry_at`` (epoch seconds).

    Beyond the contract's mapping, and not terminal (the job's one terminal
    ``job:progress`` comes later), so clients that count terminal events
    ignore it.
    """

    batch_id: str
    job_id: str
    error: str
    retry_at: float | None
    type: str
    attempt: int


@attrs.frozen(kw_only=True)
class RateLimitedJob:
    """``job:rate-limited``: the job's handler raised ``RateLimited`` (its
    API answered 429). The job is pending again with no attempt used; the
    batch starts nothing before ``resume_at`` (epoch seconds), ``retry_after``
    seconds from the report, and with ``type_wide`` neither does any batch of
    the job's ``type`` on any engine of the cluster (the type has a rate
    limit of its own).

    Beyond the contract's mapping, and not terminal (the job's one terminal
    ``job:progress`` comes when it runs again and finishes).
    """

    batch_id: str
    job_id: str
    type: str
    retry_after: float
    resume_at: float
    type_wide: bool = False


@attrs.frozen(kw_only=True)
class RunDone:
    """``done``: the run is over; ``reason`` says why when it was stopped
    early (``shutdown``, ``cancelled``, ``taken-over``: another engine of the
    cluster runs the batch now, ``fenced``: this engine could not renew its
    leases and stopped the run before another engine may take it over)."""

    batch_id: str
    completed: int = attrs.field(validator=_non_negative)
    failed: int = attrs.field(validator=_non_negative)
    reason: str | None = _omitted_when_none()


@attrs.frozen(kw_only=True)
class RunError:
    """``error``: a child crashed or the run broke; ``error`` says why, for
    people. With ``restarting`` the engine carries on with a fresh child and
    the run goes on; without, the run ends here."""

    batch_id: str
    error: str
    restarting: bool = False


EventData = (
    ProcessingStarted
    | ProcessingProgress
    | JobUpdate
    | JobRetrying
    | RateLimitedJob
    | RunDone
    | RunError
)

#: The one table of events: each name a subscriber can see, and its data.
EVENT_TYPES: Mapping[str, type[EventData]] = types.MappingProxyType(
    {
        "processing:started": ProcessingStarted,
        "processing:progress": ProcessingProgress,
        "job:progress": JobUpdate,
        "job:retrying": JobRetrying,
        "job:rate-limited": RateLimitedJob,
        "done": RunDone,
        "error": RunError,
    }
)

_NAMES: Mapping[type[EventData], str] = {cls: name for name, cls in EVENT_TYPES.items()}


# --- events -------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Event:
    """One event as subscribers receive it: its data, stamped with its ``seq``."""

    seq: int = attrs.field(validator=at_least_one)
    data: EventData = attrs.field(validator=attrs.validators.instance_of(tuple(_NAMES)))

    @property
    def event(self) -> str:
        """The event's name, as the table gives it for its data."""
        return _NAMES[type(self.data)]


_SEQ = attrs.fields(Event).seq
_new_event = object.__new__
_set_field = object.__setattr__


def stamp(seq: int, data: EventData) -> Event:
    """``data`` stamped ``seq``: the very ``Event(seq=seq, data=data)``,
    made without its generated ``__init__`` and validator calls, which
    cost more than the checks themselves; the bus stamps every event so.

    Raises:
        TypeError: ``data`` is not an instance of a class of ``EVENT_TYPES``.
        ValueError: ``seq`` is below 1.
    """
    if type(data) not in _NAMES:
        raise TypeError(f"data must be event data, not {type(data).__name__}")
    if seq < 1:
        at_least_one(None, _SEQ, seq)  # raises the constructor's own error
    event: Event = _new_event(Event)
    _set_field(event, "seq", seq)
    _set_field(event, "data", data)
    return event


def ends_run(event: Event) -> bool:
    """Whether ``event`` ends its batch's run: ``done``, or an ``error``
    after which the engine does not restart the child."""
    data = event.data
    return isinstance(data, RunDone) or (isinstance(data, RunError) and not data.restarting)


@attrs.frozen(kw_only=True)
class _StoredFrame:
    """An event as an event log keeps it: the log holds the ``seq`` beside it."""

    event: str
    data: Any


def stored_frame(data: EventData) -> str:
    """``data`` as an event log stores it: ``{"event", "data"}``, no seq.

    Raises:
        LocalProtocolError: ``data`` holds something JSON cannot carry.
    """
    name = _NAMES[type(data)]
    return encode_json(CONVERTER.unstructure(_StoredFrame(event=name, data=data)), name).decode()


def parse_stored_frame(seq: int, raw: str | bytes) -> Event:
    """The event an event log holds as ``raw`` under ``seq`` (the other side
    of ``stored_frame``).

    Raises:
        RemoteProtocolError: ``raw`` is not JSON, not a valid event, or an
            event this version does not know (a newer engine wrote it).
    """
    try:
        value = jsontext.load_own(raw)
    except orjson.JSONDecodeError as exc:
        raise RemoteProtocolError(f"stored event is not JSON: {exc}") from exc
    frame = structure_as(value, _StoredFrame, "stored event")
    return decode_event(frame.event, seq, frame.data, "stored event")


def decode_event(name: str, seq: int, data: Any, what: str, path: str = "$") -> Event:
    """The event named ``name`` with decoded JSON ``data``, stamped ``seq``;
    ``what`` and ``path`` (where the frame sits in a message) locate errors.

    Raises:
        RemoteProtocolError: an event this version does not know, or data
            that does not fit its class.
    """
    cls = EVENT_TYPES.get(name)
    if cls is None:
        raise RemoteProtocolError(f"invalid {what}: unknown event {name!r:.80} @ {path}.event")
    return Event(seq=seq, data=structure_as(data, cls, what, f"{path}.data"))
