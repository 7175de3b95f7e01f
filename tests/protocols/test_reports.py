"""A child's burst of messages as ``Reports`` lines: the engine reads back
the same messages in the same order, whatever they hold, and a burst too
big for one line is cut into several."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import framing, ipc, jsontext
from protocols.errors import RemoteProtocolError
from protocols.fast_decode import fast_structurer
from protocols.framing import LineFramer, reports_lines
from tests.protocols.strategies import CHILD_MESSAGES, SETTINGS, drain


def _read_back(wire: bytes) -> list[ipc.ChildMessage]:
    receiver: LineFramer[ipc.ChildLine] = LineFramer(ipc.ChildLine)
    receiver.receive_data(wire)
    return [fact for line in drain(receiver) for fact in ipc.facts_of(line)]


@SETTINGS
@given(st.lists(CHILD_MESSAGES, min_size=1, max_size=8))
def test_a_burst_reads_back_as_the_same_messages(messages: list[ipc.ChildMessage]) -> None:
    sender: LineFramer[ipc.ChildMessage] = LineFramer(ipc.ChildMessage)
    wire = reports_lines([sender.encode_object(message) for message in messages])
    assert wire.count(b"\n") == 1  # far below the line budget: one line
    assert _read_back(wire) == messages


def test_one_message_is_written_as_itself() -> None:
    sender: LineFramer[ipc.ChildMessage] = LineFramer(ipc.ChildMessage)
    message = ipc.JobCompleted(job_id="j", result=1)
    assert reports_lines([sender.encode_object(message)]) == sender.encode(message)


def test_a_wide_integer_anywhere_keeps_the_line_exact() -> None:
    sender: LineFramer[ipc.ChildMessage] = LineFramer(ipc.ChildMessage)
    messages: list[ipc.ChildMessage] = [
        ipc.JobStarted(job_id="a", started_at=1.0),
        ipc.JobCompleted(job_id="a", result=[2**70, -(2**80)]),
    ]
    wire = reports_lines([sender.encode_object(message) for message in messages])
    assert wire[:1] == jsontext.WIDE
    assert _read_back(wire) == messages


def test_a_burst_over_the_budget_is_cut_into_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(framing, "REPORTS_LINE_BYTES", 200)
    sender: LineFramer[ipc.ChildMessage] = LineFramer(ipc.ChildMessage)
    messages: list[ipc.ChildMessage] = [
        ipc.JobCompleted(job_id=f"j{n}", result="x" * 60) for n in range(10)
    ]
    objects = [sender.encode_object(message) for message in messages]
    wire = reports_lines(objects)
    lines = wire.splitlines()
    assert len(lines) > 1
    # Each line closes at the first message that reaches the budget.
    for line in lines:
        assert len(line) < 200 + len(objects[0]) + 64
    assert _read_back(wire) == messages


def test_reports_do_not_nest() -> None:
    inner = {"type": "reports", "facts": [{"type": "job-interrupted", "jobId": "j"}]}
    raw: Any = {"type": "reports", "facts": [inner]}
    assert fast_structurer(ipc.ChildLine)(raw) is None
    receiver: LineFramer[ipc.ChildLine] = LineFramer(ipc.ChildLine)
    receiver.receive_data(jsontext.dumps(raw) + b"\n")
    with pytest.raises(RemoteProtocolError):
        receiver.next_message()
