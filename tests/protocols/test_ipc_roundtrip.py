"""Every IPC message survives the converter and the framer, however the bytes are cut."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from protocols import ipc, jsontext
from protocols.codec import CONVERTER
from protocols.framing import NEED_DATA, LineFramer
from tests.protocols.strategies import (
    CHILD_MESSAGES,
    PARENT_MESSAGES,
    SETTINGS,
    FramerPair,
    drain,
)

# The unions as plain values, for the converter's ``structure(value, type)``.
PARENT: Any = ipc.ParentMessage
CHILD: Any = ipc.ChildMessage

# A batch of messages and where to cut their concatenated bytes; the cut
# positions are drawn independently and clipped to the wire length.
CUTS = st.lists(st.integers(min_value=0, max_value=4096), max_size=12)


@SETTINGS
@given(PARENT_MESSAGES)
def test_parent_messages_survive_the_converter(message: ipc.ParentMessage) -> None:
    raw = CONVERTER.unstructure(message, PARENT)
    assert raw["type"] == ipc.PARENT_MESSAGE_TAGS[type(message)]
    assert CONVERTER.structure(jsontext.load_any(jsontext.dumps(raw)), PARENT) == message


@SETTINGS
@given(CHILD_MESSAGES)
def test_child_messages_survive_the_converter(message: ipc.ChildMessage) -> None:
    raw = CONVERTER.unstructure(message, CHILD)
    assert raw["type"] == ipc.CHILD_MESSAGE_TAGS[type(message)]
    assert CONVERTER.structure(jsontext.load_any(jsontext.dumps(raw)), CHILD) == message


@SETTINGS
@given(st.lists(PARENT_MESSAGES, max_size=6), CUTS)
def test_parent_to_child_in_any_chunks(messages: list[ipc.ParentMessage], cuts: list[int]) -> None:
    assert FramerPair().to_child(messages, cuts) == messages


@SETTINGS
@given(st.lists(CHILD_MESSAGES, max_size=6), CUTS)
def test_child_to_parent_in_any_chunks(messages: list[ipc.ChildMessage], cuts: list[int]) -> None:
    assert FramerPair().to_parent(messages, cuts) == messages


@SETTINGS
@given(st.lists(CHILD_MESSAGES, min_size=1, max_size=3))
def test_one_byte_at_a_time(messages: list[ipc.ChildMessage]) -> None:
    pair = FramerPair()
    wire_length = sum(len(pair.child_out.encode(message)) for message in messages)
    assert pair.to_parent(messages, range(wire_length)) == messages


@SETTINGS
@given(st.lists(PARENT_MESSAGES, min_size=1, max_size=4))
def test_a_conversation_keeps_both_pipes_apart(messages: list[ipc.ParentMessage]) -> None:
    pair = FramerPair()
    assert pair.to_parent([ipc.Ready(pid=42)]) == [ipc.Ready(pid=42)]
    assert pair.to_child(messages) == messages
    done = ipc.Done(completed=1, failed=0)
    assert pair.to_parent([done]) == [done]


@SETTINGS
@given(CHILD_MESSAGES)
def test_one_message_is_one_line(message: ipc.ChildMessage) -> None:
    line = LineFramer(ipc.ChildMessage).encode(message)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1


def test_wire_names_are_camel_case_and_tags_are_the_contracts() -> None:
    framer: LineFramer[Any] = LineFramer(ipc.ChildMessage)
    line = framer.encode(ipc.Progress(in_flight=2, completed=3, failed=1))
    assert jsontext.load_any(line) == {
        "type": "progress",
        "inFlight": 2,
        "completed": 3,
        "failed": 1,
    }
    line = framer.encode(ipc.JobProgress(job_id="j1", progress=5))
    assert jsontext.load_any(line) == {"type": "job-progress", "jobId": "j1", "progress": 5}
    line = framer.encode(ipc.JobFailed(job_id="j1", error="boom"))
    assert jsontext.load_any(line) == {
        "type": "job-failed",
        "jobId": "j1",
        "error": "boom",
        "traceback": None,
    }


def test_need_data_until_the_newline_arrives() -> None:
    sender: LineFramer[Any] = LineFramer(ipc.ParentMessage)
    receiver: LineFramer[Any] = LineFramer(ipc.ParentMessage)
    wire = sender.encode(ipc.Begin(batch_id="b", concurrency=2))
    receiver.receive_data(wire[:-1])
    assert receiver.next_message() is NEED_DATA
    assert receiver.next_message() is NEED_DATA
    assert receiver.buffered == len(wire) - 1
    receiver.receive_data(b"")
    assert receiver.next_message() is NEED_DATA
    receiver.receive_data(wire[-1:])
    assert drain(receiver) == [ipc.Begin(batch_id="b", concurrency=2)]
    assert receiver.buffered == 0


def test_tag_tables_cover_their_unions_exactly() -> None:
    for union, tags in (
        (ipc.ParentMessage, ipc.PARENT_MESSAGE_TAGS),
        (ipc.ChildMessage, ipc.CHILD_MESSAGE_TAGS),
        (ipc.ChildLine, ipc.CHILD_LINE_TAGS),
    ):
        assert set(tags) == set(union.__args__)
        assert len(set(tags.values())) == len(tags)
