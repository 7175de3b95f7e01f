"""Subscriber events: the table, each event's data, control messages."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import control, events, frames, jsontext
from protocols.codec import CONVERTER
from protocols.errors import RemoteProtocolError
from protocols.events import Event
from protocols.lifecycle import JobState
from tests.protocols.strategies import (
    BATCH_IDS,
    CONTROL_MESSAGES,
    EVENT_DATA,
    JSON,
    JSON_OBJECTS,
    SETTINGS,
    TEXT,
)

# --- the table -----------------------------------------------------------------


def test_the_table_holds_the_contracts_events() -> None:
    assert set(events.EVENT_TYPES) == {
        "processing:started",
        "processing:progress",
        "job:progress",
        "job:retrying",
        "job:rate-limited",
        "done",
        "error",
    }
    assert set(events.EVENT_TYPES.values()) == set(events.EventData.__args__)


def test_the_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        events.EVENT_TYPES["ready"] = events.RunDone  # type: ignore[index]


@SETTINGS
@given(EVENT_DATA)
def test_an_event_is_named_by_its_data(data: events.EventData) -> None:
    event = Event(seq=1, data=data)
    assert events.EVENT_TYPES[event.event] is type(data)


@SETTINGS
@given(EVENT_DATA)
def test_event_data_round_trip(data: events.EventData) -> None:
    assert CONVERTER.structure(CONVERTER.unstructure(data), type(data)) == data


@pytest.mark.parametrize(
    ("data", "ends"),
    [
        (events.RunDone(batch_id="b", completed=1, failed=0), True),
        (events.RunDone(batch_id="b", completed=1, failed=0, reason="shutdown"), True),
        (events.RunError(batch_id="b", error="exited with 3"), True),
        (events.RunError(batch_id="b", error="exited with 3", restarting=True), False),
        (events.ProcessingStarted(batch_id="b"), False),
        (events.ProcessingProgress(batch_id="b", completed=1, failed=0, total=1), False),
    ],
)
def test_what_ends_a_run(data: events.EventData, ends: bool) -> None:
    assert events.ends_run(Event(seq=1, data=data)) is ends


def test_close_codes_of_the_contract() -> None:
    assert events.CloseCode.GOING_AWAY == 1001
    assert events.CloseCode.POLICY_VIOLATION == 1008
    assert events.CloseCode.TRY_AGAIN_LATER == 1013


# --- events ----------------------------------------------------------------------


def test_an_event_is_immutable() -> None:
    event = Event(seq=1, data=events.RunDone(batch_id="b", completed=1, failed=0))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.seq = 2  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.data.completed = 3  # type: ignore[misc]


def test_a_seq_starts_at_one() -> None:
    with pytest.raises(ValueError, match="seq must be at least 1, got 0"):
        Event(seq=0, data=events.ProcessingStarted(batch_id="b"))
    with pytest.raises(ValueError, match="seq must be at least 1, got 0"):
        events.stamp(0, events.ProcessingStarted(batch_id="b"))


@SETTINGS
@given(st.integers(min_value=1, max_value=2**62), EVENT_DATA)
def test_a_stamped_event_is_the_constructed_one(seq: int, data: events.EventData) -> None:
    stamped = events.stamp(seq, data)
    assert type(stamped) is Event
    assert stamped == Event(seq=seq, data=data)
    assert hash(stamped) == hash(Event(seq=seq, data=data))
    assert (stamped.seq, stamped.data) == (seq, data)
    assert events.EVENT_TYPES[stamped.event] is type(data)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stamped.seq = seq + 1  # type: ignore[misc]


def test_only_event_data_is_stamped() -> None:
    with pytest.raises(TypeError, match="data must be event data, not dict"):
        events.stamp(1, {"batchId": "b"})  # type: ignore[arg-type]


# --- data of each event -------------------------------------------------------------


def _wire(data: events.EventData) -> Any:
    return jsontext.load_any(frames.sse_frame(Event(seq=1, data=data)).split(b"data: ")[1])


def test_started_and_progress_data() -> None:
    assert _wire(events.ProcessingStarted(batch_id="b")) == {"batchId": "b"}
    progress = events.ProcessingProgress(batch_id="b", completed=3, failed=1, total=10)
    wire = {"batchId": "b", "completed": 3, "failed": 1, "total": 10, "etaSeconds": None}
    assert _wire(progress) == wire
    timed = events.ProcessingProgress(
        batch_id="b", completed=3, failed=1, total=10, eta_seconds=4.5
    )
    assert _wire(timed) == wire | {"etaSeconds": 4.5}


@pytest.mark.parametrize(
    ("update", "wire"),
    [
        (
            events.JobUpdate(batch_id="b", job_id="j", status=JobState.ACTIVE, progress=0.0),
            {"status": "active", "progress": 0.0},
        ),
        (
            events.JobUpdate(
                batch_id="b", job_id="j", status=JobState.COMPLETED, type="echo", attempt=1
            ),
            {"status": "completed", "type": "echo", "attempt": 1},
        ),
        (
            events.JobUpdate(
                batch_id="b",
                job_id="j",
                status=JobState.FAILED,
                error="boom",
                type="fail",
                attempt=2,
                duration_ms=1.5,
            ),
            {"status": "failed", "error": "boom", "type": "fail", "attempt": 2, "durationMs": 1.5},
        ),
    ],
)
def test_job_progress_data(update: events.JobUpdate, wire: dict[str, Any]) -> None:
    assert _wire(update) == {"batchId": "b", "jobId": "j", **wire}


@pytest.mark.parametrize(
    ("fields", "fault"),
    [
        ({"status": JobState.ACTIVE}, "progress"),
        ({"status": JobState.COMPLETED, "progress": 100.0}, "progress"),
        ({"status": JobState.ACTIVE, "progress": 101.0}, "progress"),
        ({"status": JobState.FAILED}, "error"),
        ({"status": JobState.COMPLETED, "error": "boom"}, "error"),
        ({"status": JobState.PENDING}, "status"),
    ],
)
def test_job_progress_data_says_what_its_status_allows(fields: dict[str, Any], fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        events.JobUpdate(batch_id="b", job_id="j", **fields)


def test_retrying_done_and_error_data() -> None:
    retrying = events.JobRetrying(
        batch_id="b", job_id="j", error="boom", retry_at=12.5, type="flaky", attempt=1
    )
    assert _wire(retrying) == {
        "batchId": "b",
        "jobId": "j",
        "error": "boom",
        "retryAt": 12.5,
        "type": "flaky",
        "attempt": 1,
    }
    done = events.RunDone(batch_id="b", completed=2, failed=0, reason="cancelled")
    assert _wire(done) == {"batchId": "b", "completed": 2, "failed": 0, "reason": "cancelled"}
    error = events.RunError(batch_id="b", error="child exited with 3")
    assert _wire(error) == {"batchId": "b", "error": "child exited with 3", "restarting": False}


# --- control messages -----------------------------------------------------------------


@SETTINGS
@given(CONTROL_MESSAGES)
def test_control_round_trip(message: control.ControlMessage) -> None:
    frame = control.control_frame(message)
    assert len(jsontext.load_any(frame)) == 1
    assert control.parse_control(frame) == message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"subscribe": ["a", "b"]}', control.Subscribe(subscribe=("a", "b"))),
        (b'{"unsubscribe": []}', control.Unsubscribe(unsubscribe=())),
        (b'{"resumeFrom": 0}', control.ResumeFrom(resume_from=0)),
    ],
)
def test_control_messages_of_the_contract(raw: bytes, message: control.ControlMessage) -> None:
    assert control.parse_control(raw) == message
    assert control.parse_control(raw.decode()) == message


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "not JSON"),
        (b"subscribe", "not JSON"),
        (b"[]", "got an array"),
        (b"{}", "exactly one"),
        (b'{"subscribe": ["a"], "resumeFrom": 1}', "exactly one"),
        (b'{"subscribe": ["a"], "extra": 1}', "exactly one"),
        (b'{"publish": ["a"]}', "exactly one"),
        (b'{"resume_from": 1}', "exactly one"),
        (b'{"subscribe": "a"}', r"expected an array, got a string @ \$\.subscribe"),
        (b'{"subscribe": {"a": 1}}', r"expected an array, got an object @ \$\.subscribe"),
        (b'{"subscribe": [1]}', r"expected a string, got an integer @ \$\.subscribe\[0\]"),
        (b'{"unsubscribe": ["no spaces"]}', r"not a batch id @ \$\.unsubscribe"),
        (b'{"resumeFrom": -1}', r"at least 0, got -1 @ \$\.resumeFrom"),
        (b'{"resumeFrom": "5"}', r"expected an integer, got a string @ \$\.resumeFrom"),
        (b'{"resumeFrom": 5.5}', r"expected an integer, got a float @ \$\.resumeFrom"),
        (b'{"resumeFrom": true}', r"expected an integer, got a boolean @ \$\.resumeFrom"),
        (b'{"resumeFrom": null}', r"expected an integer, got null @ \$\.resumeFrom"),
    ],
)
def test_control_decoding_is_strict(raw: bytes, says: str) -> None:
    with pytest.raises(RemoteProtocolError, match=says):
        control.parse_control(raw)


@SETTINGS
@given(
    JSON
    | JSON_OBJECTS
    | st.fixed_dictionaries({"subscribe": JSON})
    | st.fixed_dictionaries({"resumeFrom": JSON})
    | st.builds(lambda key, value: {key: value}, TEXT, JSON)
    | st.builds(lambda ids: {"subscribe": ids}, st.lists(BATCH_IDS | TEXT, max_size=3))
)
def test_junk_control_raises_only_remote_protocol_error(junk: Any) -> None:
    try:
        message = control.parse_control(jsontext.dumps(junk))
    except RemoteProtocolError:
        return
    assert isinstance(message, control.Subscribe | control.Unsubscribe | control.ResumeFrom)
    assert jsontext.load_any(control.control_frame(message)) == junk
