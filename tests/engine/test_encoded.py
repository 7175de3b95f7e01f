"""Frames and burst messages encoded once for every event client."""

from __future__ import annotations

import orjson

from engine.server.encoded import WRITE_BUDGET, Frames
from protocols.events import Event, JobUpdate, RunError
from protocols.frames import sse_frame


def _events(first_seq: int, batch_ids: str) -> list[Event]:
    return [
        Event(seq=first_seq + i, data=JobUpdate(batch_id=b, job_id=f"j{i}", status="completed"))
        for i, b in enumerate(batch_ids)
    ]


def test_subscribers_taking_the_same_burst_share_one_message() -> None:
    frames = Frames()
    burst = _events(1, "aaa")
    first = frames.ws_arrays(burst)
    assert frames.ws_arrays(list(burst)) is first
    assert [frame["seq"] for frame in orjson.loads(first[0])] == [1, 2, 3]
    chunks = frames.sse_chunks(burst)
    assert frames.sse_chunks(list(burst)) is chunks
    assert chunks == [b"".join(sse_frame(event) for event in burst)]


def test_other_events_between_the_same_seqs_make_their_own_message() -> None:
    frames = Frames()
    one, two, three, four = _events(1, "abcd")
    frames.ws_arrays([one, two, four])
    message = frames.ws_arrays([one, three, four])
    assert [frame["seq"] for frame in orjson.loads(message[0])] == [1, 3, 4]


def test_a_burst_past_the_write_budget_becomes_several_messages_in_order() -> None:
    frames = Frames()
    error = "e" * (WRITE_BUDGET // 3)
    burst = [Event(seq=i, data=RunError(batch_id="a", error=error)) for i in range(1, 8)]
    messages = frames.ws_arrays(burst)
    assert len(messages) == 3
    seqs = [[frame["seq"] for frame in orjson.loads(message)] for message in messages]
    assert seqs == [[1, 2, 3], [4, 5, 6], [7]]
    assert all(len(message) < 2 * WRITE_BUDGET for message in messages)
    chunks = frames.sse_chunks(burst)
    assert b"".join(chunks) == b"".join(sse_frame(event) for event in burst)
    assert len(chunks) == 3
