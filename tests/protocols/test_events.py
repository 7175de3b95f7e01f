"""Subscriber events: the contract's mapping, WebSocket and SSE framing, control messages."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import events, ipc
from protocols.errors import RemoteProtocolError
from protocols.events import Event
from tests.protocols.strategies import (
    BATCH_IDS,
    CONTROL_MESSAGES,
    EVENTS,
    JSON,
    JSON_OBJECTS,
    SETTINGS,
    TEXT,
)

# --- the mapping ----------------------------------------------------------------


def test_the_mapping_is_the_contracts() -> None:
    assert dict(events.EVENT_BY_TAG) == {
        "started": "processing:started",
        "progress": "processing:progress",
        "job-progress": "job:progress",
        "done": "done",
        "error": "error",
    }


def test_every_mapped_tag_is_a_child_message() -> None:
    assert set(events.EVENT_BY_TAG) <= set(ipc.CHILD_MESSAGE_TAGS.values())


def test_every_event_name_has_a_source() -> None:
    assert set(events.EVENT_BY_TAG.values()) == events.EVENT_NAMES


@pytest.mark.parametrize(
    ("message", "name"),
    [
        (ipc.BatchStarted(batch_id="b"), "processing:started"),
        (ipc.Progress(in_flight=1, completed=2, failed=0), "processing:progress"),
        (ipc.JobProgress(job_id="j", status=ipc.JobStatus.COMPLETED), "job:progress"),
        (ipc.Done(completed=2, failed=1), "done"),
        (ipc.ChildFailed(error="boom"), "error"),
        (ipc.Ready(pid=1), None),
        (ipc.JobInterrupted(job_id="j"), None),
    ],
)
def test_event_name_of_each_child_message(message: ipc.ChildMessage, name: str | None) -> None:
    assert events.event_name(message) == name


def test_the_mapping_is_read_only() -> None:
    with pytest.raises(TypeError):
        events.EVENT_BY_TAG["ready"] = "ready"  # type: ignore[index]


# --- framing ----------------------------------------------------------------------


def test_websocket_frame_of_the_contract() -> None:
    event = Event(
        event=events.JOB_PROGRESS,
        seq=7,
        data=events.job_progress_data("b1", job_id="j1", status=ipc.JobStatus.ACTIVE, progress=40),
    )
    assert orjson.loads(events.ws_frame(event)) == {
        "event": "job:progress",
        "seq": 7,
        "data": {"batchId": "b1", "jobId": "j1", "status": "active", "progress": 40},
    }


def test_sse_frame_of_the_contract() -> None:
    event = Event(event=events.DONE, seq=12, data=events.done_data("b1", completed=3, failed=1))
    assert events.sse_frame(event) == (
        b'id: 12\nevent: done\ndata: {"batchId":"b1","completed":3,"failed":1}\n\n'
    )


@SETTINGS
@given(EVENTS)
def test_websocket_round_trip(event: Event) -> None:
    frame = events.ws_frame(event)
    assert isinstance(frame, str)
    assert sorted(orjson.loads(frame)) == ["data", "event", "seq"]
    assert events.parse_ws_frame(frame) == event
    assert events.parse_ws_frame(frame.encode()) == event


@SETTINGS
@given(EVENTS)
def test_sse_frame_is_three_fields_and_a_blank_line(event: Event) -> None:
    frame = events.sse_frame(event)
    assert frame.endswith(b"\n\n")
    lines = frame[:-2].split(b"\n")
    assert all(b"\r" not in line for line in lines)
    pairs = [line.split(b": ", 1) for line in lines]
    assert [name for name, _ in pairs] == [b"id", b"event", b"data"]
    fields = dict(pairs)
    assert int(fields[b"id"]) == event.seq
    assert fields[b"event"].decode() == event.event
    assert orjson.loads(fields[b"data"]) == event.data


def test_data_with_line_breaks_stays_on_one_sse_line() -> None:
    data = {"batchId": "b", "error": "line one\nline two\r\n\u2028end"}
    frame = events.sse_frame(Event(event=events.ERROR, seq=1, data=data))
    assert frame.count(b"\n") == 4
    assert frame.count(b"\r") == 0


def test_an_event_is_immutable_and_owns_its_data() -> None:
    data = {"batchId": "b", "completed": 1}
    event = Event(event=events.DONE, seq=1, data=data)
    data["completed"] = 2
    assert event.data["completed"] == 1
    with pytest.raises(TypeError):
        event.data["completed"] = 3  # type: ignore[index]


@pytest.mark.parametrize(
    ("fields", "fault"),
    [
        ({"event": "done", "seq": 0, "data": {"batchId": "b"}}, "seq"),
        ({"event": "done\nid: 9", "seq": 1, "data": {"batchId": "b"}}, "event"),
        ({"event": "", "seq": 1, "data": {"batchId": "b"}}, "event"),
        ({"event": "done", "seq": 1, "data": {}}, "data"),
        ({"event": "done", "seq": 1, "data": {"batchId": 5}}, "data"),
    ],
)
def test_invalid_events_are_refused(fields: dict[str, Any], fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        Event(**fields)
    with pytest.raises(RemoteProtocolError, match=rf"\$\.{fault}"):
        events.parse_ws_frame(orjson.dumps(fields))


@SETTINGS
@given(JSON | st.binary(max_size=100))
def test_junk_frames_raise_only_remote_protocol_error(junk: Any) -> None:
    raw = junk if isinstance(junk, bytes) else orjson.dumps(junk)
    try:
        event = events.parse_ws_frame(raw)
    except RemoteProtocolError:
        return
    assert isinstance(event, Event)


# --- data of each event -------------------------------------------------------------


def test_started_data() -> None:
    assert events.started_data("b") == {"batchId": "b"}


def test_progress_data() -> None:
    assert events.progress_data("b", completed=3, failed=1, total=10) == {
        "batchId": "b",
        "completed": 3,
        "failed": 1,
        "total": 10,
    }


@pytest.mark.parametrize(
    ("status", "progress", "error", "extra"),
    [
        (ipc.JobStatus.ACTIVE, None, None, {"progress": 0.0}),
        (ipc.JobStatus.ACTIVE, 55.5, None, {"progress": 55.5}),
        (ipc.JobStatus.COMPLETED, 100.0, None, {}),
        (ipc.JobStatus.FAILED, 30.0, "boom", {"error": "boom"}),
    ],
)
def test_job_progress_data(
    status: ipc.JobStatus, progress: float | None, error: str | None, extra: dict[str, Any]
) -> None:
    data = events.job_progress_data("b", job_id="j", status=status, progress=progress, error=error)
    assert data == {"batchId": "b", "jobId": "j", "status": status.value, **extra}


def test_done_data_with_extra_fields() -> None:
    assert events.done_data("b", completed=2, failed=0, reason="cancelled") == {
        "batchId": "b",
        "completed": 2,
        "failed": 0,
        "reason": "cancelled",
    }


def test_done_data_refuses_to_overwrite_its_own_fields() -> None:
    with pytest.raises(ValueError, match="batchId"):
        events.done_data("b", completed=2, failed=0, batchId="other")


def test_error_data() -> None:
    assert events.error_data("b", error="child exited with 3") == {
        "batchId": "b",
        "error": "child exited with 3",
    }


# --- control messages -----------------------------------------------------------------


@SETTINGS
@given(CONTROL_MESSAGES)
def test_control_round_trip(message: events.ControlMessage) -> None:
    frame = events.control_frame(message)
    assert len(orjson.loads(frame)) == 1
    assert events.parse_control(frame) == message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"subscribe": ["a", "b"]}', events.Subscribe(subscribe=("a", "b"))),
        (b'{"unsubscribe": []}', events.Unsubscribe(unsubscribe=())),
        (b'{"resumeFrom": 0}', events.ResumeFrom(resume_from=0)),
    ],
)
def test_control_messages_of_the_contract(raw: bytes, message: events.ControlMessage) -> None:
    assert events.parse_control(raw) == message
    assert events.parse_control(raw.decode()) == message


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
        (b'{"resumeFrom": 5.0}', r"expected an integer, got a float @ \$\.resumeFrom"),
        (b'{"resumeFrom": true}', r"expected an integer, got a boolean @ \$\.resumeFrom"),
        (b'{"resumeFrom": null}', r"expected an integer, got null @ \$\.resumeFrom"),
    ],
)
def test_control_decoding_is_strict(raw: bytes, says: str) -> None:
    with pytest.raises(RemoteProtocolError, match=says):
        events.parse_control(raw)


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
        message = events.parse_control(orjson.dumps(junk))
    except RemoteProtocolError:
        return
    assert isinstance(message, events.Subscribe | events.Unsubscribe | events.ResumeFrom)
    assert orjson.loads(events.control_frame(message)) == junk
