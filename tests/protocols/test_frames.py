"""WebSocket and SSE frames of events, and ``?batch=1`` arrays of frames."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import events, frames, jsontext
from protocols.codec import CONVERTER
from protocols.errors import RemoteProtocolError
from protocols.events import Event
from protocols.lifecycle import JobState
from tests.protocols.strategies import EVENT_DATA, EVENT_DATA_OF, EVENTS, JSON, SETTINGS


def test_websocket_frame_of_the_contract() -> None:
    data = events.JobUpdate(batch_id="b1", job_id="j1", status=JobState.ACTIVE, progress=40)
    assert jsontext.load_any(frames.ws_frame(Event(seq=7, data=data))) == {
        "event": "job:progress",
        "seq": 7,
        "data": {"batchId": "b1", "jobId": "j1", "status": "active", "progress": 40},
    }


def test_sse_frame_of_the_contract() -> None:
    event = Event(seq=12, data=events.RunDone(batch_id="b1", completed=3, failed=1))
    assert frames.sse_frame(event) == (
        b'id: 12\nevent: done\ndata: {"batchId":"b1","completed":3,"failed":1}\n\n'
    )


@SETTINGS
@given(EVENTS)
def test_websocket_round_trip(event: Event) -> None:
    frame = frames.ws_frame(event)
    assert isinstance(frame, str)
    assert sorted(jsontext.load_any(frame)) == ["data", "event", "seq"]
    assert frames.parse_ws_frame(frame) == event
    assert frames.parse_ws_frame(frame.encode()) == event


@SETTINGS
@given(EVENTS)
def test_sse_frame_is_three_fields_and_a_blank_line(event: Event) -> None:
    frame = frames.sse_frame(event)
    assert frame.endswith(b"\n\n")
    lines = frame[:-2].split(b"\n")
    assert all(b"\r" not in line for line in lines)
    pairs = [line.split(b": ", 1) for line in lines]
    assert [name for name, _ in pairs] == [b"id", b"event", b"data"]
    fields = dict(pairs)
    assert int(fields[b"id"]) == event.seq
    assert fields[b"event"].decode() == event.event
    assert CONVERTER.structure(jsontext.load_any(fields[b"data"]), type(event.data)) == event.data


#: Counts past 64 bits, which orjson cannot write: jsontext's exact writer
#: takes over and marks the text with a leading space.
_WIDE_COUNTS = st.integers(min_value=2**64, max_value=2**80)
_WIDE_EVENT_DATA_OF: dict[type[events.EventData], st.SearchStrategy[events.EventData]] = {
    events.ProcessingProgress: st.builds(
        events.ProcessingProgress,
        batch_id=st.just("b"),
        completed=_WIDE_COUNTS,
        failed=_WIDE_COUNTS,
        total=_WIDE_COUNTS,
    ),
    events.RunDone: st.builds(
        events.RunDone, batch_id=st.just("b"), completed=_WIDE_COUNTS, failed=_WIDE_COUNTS
    ),
}


def _through_the_converter(event: Event) -> tuple[str, bytes]:
    """The frames as the converter's generic path writes them: unstructure
    the data by its runtime class, then encode the whole."""
    data = CONVERTER.unstructure(event.data)
    frame = {"event": event.event, "seq": event.seq, "data": data}
    sse = b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.seq,
        event.event.encode(),
        jsontext.dumps(data),
    )
    return jsontext.dumps(frame).decode(), sse


@pytest.mark.parametrize("name", sorted(events.EVENT_TYPES))
@SETTINGS
@given(seq=st.integers(min_value=1, max_value=2**62), drawn=st.data())
def test_frames_are_the_converters_bytes_for_every_event(
    name: str, seq: int, drawn: st.DataObject
) -> None:
    cls = events.EVENT_TYPES[name]
    data = drawn.draw(EVENT_DATA_OF[cls] | _WIDE_EVENT_DATA_OF.get(cls, st.nothing()))
    event = Event(seq=seq, data=data)
    assert (frames.ws_frame(event), frames.sse_frame(event)) == _through_the_converter(event)


def test_a_frame_with_a_wide_integer_is_marked_as_a_whole() -> None:
    event = Event(seq=3, data=events.RunDone(batch_id="b", completed=2**70, failed=0))
    frame = frames.ws_frame(event)
    assert frame.startswith(" {")
    assert frames.parse_ws_frame(frame) == event
    assert frames.sse_frame(event).startswith(b"id: 3\nevent: done\ndata:  {")


def test_data_with_line_breaks_stays_on_one_sse_line() -> None:
    data = events.RunError(batch_id="b", error="line one\nline two\r\n\u2028end")
    frame = frames.sse_frame(Event(seq=1, data=data))
    assert frame.count(b"\n") == 4
    assert frame.count(b"\r") == 0


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        (
            {"event": "done", "seq": 0, "data": {"batchId": "b", "completed": 0, "failed": 0}},
            "seq",
        ),
        ({"event": "done\nid: 9", "seq": 1, "data": {"batchId": "b"}}, "event"),
        ({"event": "", "seq": 1, "data": {"batchId": "b"}}, "event"),
        ({"event": "test:ping", "seq": 1, "data": {"batchId": "b"}}, "event"),
        ({"event": "processing:started", "seq": 1, "data": {}}, "data.batchId"),
        ({"event": "processing:started", "seq": 1, "data": {"batchId": 5}}, "data.batchId"),
        ({"event": "processing:started", "seq": 1, "data": []}, "data"),
        (
            {"event": "processing:started", "seq": 1, "data": {"batchId": "b", "more": 1}},
            "data",
        ),
        (
            {"event": "job:progress", "seq": 1, "data": {"batchId": "b", "jobId": "j"}},
            "data.status",
        ),
    ],
)
def test_invalid_frames_are_refused(fields: dict[str, Any], path: str) -> None:
    with pytest.raises(RemoteProtocolError, match=rf"@ \$\.{re.escape(path)}\b"):
        frames.parse_ws_frame(jsontext.dumps(fields))


@SETTINGS
@given(JSON | st.binary(max_size=100))
def test_junk_frames_raise_only_remote_protocol_error(junk: Any) -> None:
    raw = junk if isinstance(junk, bytes) else jsontext.dumps(junk)
    try:
        event = frames.parse_ws_frame(raw)
    except RemoteProtocolError:
        return
    assert isinstance(event, Event)


# --- ?batch=1 arrays -----------------------------------------------------------------


def _in_seq_order(steps: list[tuple[events.EventData, int]]) -> list[Event]:
    seqs = itertools.accumulate(gap for _, gap in steps)
    return [Event(seq=seq, data=data) for (data, _), seq in zip(steps, seqs, strict=True)]


#: Runs of events as a server sends them in one message: seqs increasing, with gaps.
RUNS = st.lists(
    st.tuples(EVENT_DATA, st.integers(min_value=1, max_value=1_000)), min_size=1, max_size=12
).map(_in_seq_order)


@SETTINGS
@given(RUNS)
def test_an_array_message_round_trip(run: list[Event]) -> None:
    message = frames.ws_array(frames.ws_frame(event) for event in run)
    assert [frame["seq"] for frame in jsontext.load_any(message)] == [event.seq for event in run]
    assert frames.parse_ws_message(message) == run
    assert frames.parse_ws_message(message.encode()) == run


@SETTINGS
@given(EVENTS)
def test_a_single_frame_message_is_one_event(event: Event) -> None:
    assert frames.parse_ws_message(frames.ws_frame(event)) == [event]


def _frame(seq: int, batch_id: Any = "b") -> dict[str, Any]:
    return {"event": "processing:started", "seq": seq, "data": {"batchId": batch_id}}


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("[]", "empty array"),
        ("5", "frame object or an array of frames; got an integer"),
        ('"text"', "frame object or an array of frames; got a string"),
        ("null", "got null"),
        ("[1, 2]", r"@ $[0]"),
        (jsontext.dumps([_frame(1), "x"]), r"@ $[1]"),
        (jsontext.dumps([_frame(1), _frame(2, batch_id=5)]), r"@ $[1].data.batchId"),
        (jsontext.dumps([_frame(1), {**_frame(2), "event": "nope"}]), r"@ $[1].event"),
        (jsontext.dumps([_frame(1), _frame(0)]), r"@ $[1].seq"),
        (jsontext.dumps([_frame(1), {**_frame(2), "extra": 1}]), r"unknown fields: extra @ $[1]"),
        (
            jsontext.dumps([_frame(3), _frame(2)]),
            r"seq 2 follows seq 3, out of seq order @ $[1].seq",
        ),
        (
            jsontext.dumps([_frame(3), _frame(3)]),
            r"seq 3 follows seq 3, out of seq order @ $[1].seq",
        ),
        ("[{", "event message is not JSON"),
    ],
)
def test_bad_array_messages_are_refused(message: str | bytes, says: str) -> None:
    with pytest.raises(RemoteProtocolError, match=re.escape(says)):
        frames.parse_ws_message(message)


@SETTINGS
@given(st.lists(JSON | st.builds(_frame, st.integers(min_value=-2, max_value=3)), max_size=4))
def test_junk_arrays_raise_only_remote_protocol_error(items: list[Any]) -> None:
    try:
        found = frames.parse_ws_message(jsontext.dumps(items))
    except RemoteProtocolError:
        return
    assert len(found) == len(items)
    assert [event.seq for event in found] == sorted({event.seq for event in found})
