"""Every decoder of the wire, fed junk and near misses: it returns a value
of its type or raises its one documented error, never anything else.

The decoders and their errors: ``decode_body`` → ``InvalidBody`` (each API
body class), ``parse_control`` → ``RemoteProtocolError`` (WebSocket control
messages), ``parse_stored_frame`` (the event log's stored form),
``parse_ws_frame`` and ``parse_ws_message`` (what a client reads) →
``RemoteProtocolError``, and the IPC ``LineFramer`` → ``RemoteProtocolError``
(fed in pieces cut anywhere). ``InvalidBody`` is a ``RemoteProtocolError``,
so "only ``RemoteProtocolError``" is checked as the exact family below.

Near misses start from a valid value's wire form and change one thing deep
inside it (a value replaced, a key dropped or added) or a few bytes of it,
which reaches far more of each validator than random JSON does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import api, control, events, ipc, jsontext
from protocols.codec import CONVERTER
from protocols.errors import InvalidBody, RemoteProtocolError
from protocols.frames import parse_ws_frame, parse_ws_message, ws_array, ws_frame
from protocols.framing import LineFramer
from tests.protocols.strategies import (
    BODIES,
    CHILD_MESSAGES,
    CONTROL_MESSAGES,
    EVENTS,
    JSON,
    PARENT_MESSAGES,
    SETTINGS,
    TEXT,
    drain,
)

BODY_CLASSES = [getattr(api, name) for name in api.__all__ if attrs.has(getattr(api, name, None))]


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a JSON value (the root included)."""
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*here, index))
    return found


@st.composite
def near_misses(draw: st.DrawFn, valid: st.SearchStrategy[Any]) -> bytes:
    """The wire form of a valid value, changed in one place."""
    wire = CONVERTER.unstructure(draw(valid))
    value = copy.deepcopy(wire)
    path = draw(st.sampled_from(_paths(value)))
    how = draw(st.sampled_from(["replace", "drop", "add", "bytes"]))
    if how == "bytes":
        raw = bytearray(jsontext.dumps(wire))
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, max(len(raw) - 1, 0)))
            raw[at:at] = draw(st.binary(min_size=0, max_size=2))
            if draw(st.booleans()) and raw:
                del raw[draw(st.integers(0, len(raw) - 1))]
        return bytes(raw)
    if not path:
        value = draw(JSON)
    else:
        *parents, last = path
        parent = value
        for step in parents:
            parent = parent[step]
        if how == "replace":
            parent[last] = draw(JSON)
        elif how == "drop":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(TEXT)] = draw(JSON)
        else:
            parent.append(draw(JSON))
    return jsontext.dumps(value)


def _mutated(wire: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return near_misses(wire.map(jsontext.load_any))


JUNK = st.one_of(
    st.binary(max_size=200),
    JSON.map(jsontext.dumps),
    st.text(max_size=50).map(str.encode),
)


def _only_remote_errors(
    decode: Callable[[bytes], Any], raw: bytes, family: type[Exception]
) -> Any:
    try:
        return decode(raw)
    except family as exc:
        assert str(exc)
        return None


@SETTINGS
@given(st.sampled_from(BODY_CLASSES), JUNK | near_misses(BODIES))
def test_decode_body_raises_only_invalid_body(cls: type[Any], raw: bytes) -> None:
    decoded = _only_remote_errors(lambda r: api.decode_body(r, cls), raw, InvalidBody)
    assert decoded is None or isinstance(decoded, cls)


@SETTINGS
@given(BODIES.flatmap(lambda body: st.tuples(st.just(type(body)), near_misses(st.just(body)))))
def test_near_misses_of_a_body_decode_or_fail_with_a_path(case: tuple[type[Any], bytes]) -> None:
    cls, raw = case
    try:
        decoded = api.decode_body(raw, cls)
    except InvalidBody as exc:
        assert exc.errors and all(" @ $" in line for line in exc.errors)
    else:
        assert isinstance(decoded, cls)


@SETTINGS
@given(JUNK | near_misses(CONTROL_MESSAGES))
def test_parse_control_raises_only_remote_protocol_error(raw: bytes) -> None:
    decoded = _only_remote_errors(control.parse_control, raw, RemoteProtocolError)
    assert decoded is None or isinstance(
        decoded, control.Subscribe | control.Unsubscribe | control.ResumeFrom
    )


_STORED = EVENTS.map(lambda event: events.stored_frame(event.data).encode())


@SETTINGS
@given(
    st.integers(min_value=1, max_value=2**62),
    JUNK | _STORED | _mutated(_STORED),
)
def test_parse_stored_frame_raises_only_remote_protocol_error(seq: int, raw: bytes) -> None:
    decoded = _only_remote_errors(
        lambda r: events.parse_stored_frame(seq, r), raw, RemoteProtocolError
    )
    assert decoded is None or (isinstance(decoded, events.Event) and decoded.seq == seq)


_WS_FRAMES = EVENTS.map(lambda event: ws_frame(event).encode())
_WS_ARRAYS = st.lists(EVENTS, min_size=1, max_size=3).map(
    lambda found: ws_array([ws_frame(e) for e in found]).encode()
)


@SETTINGS
@given(JUNK | _WS_FRAMES | _mutated(_WS_FRAMES) | _mutated(_WS_ARRAYS))
def test_ws_frames_and_messages_raise_only_remote_protocol_error(raw: bytes) -> None:
    one = _only_remote_errors(parse_ws_frame, raw, RemoteProtocolError)
    assert one is None or isinstance(one, events.Event)
    many = _only_remote_errors(parse_ws_message, raw, RemoteProtocolError)
    assert many is None or all(isinstance(event, events.Event) for event in many)


_UNIONS = {ipc.ParentMessage: PARENT_MESSAGES, ipc.ChildMessage: CHILD_MESSAGES}


@SETTINGS
@given(st.sampled_from(list(_UNIONS)), st.data())
def test_ipc_lines_cut_anywhere_raise_only_remote_protocol_error(
    union: Any, data: st.DataObject
) -> None:
    encoder: LineFramer[Any] = LineFramer(union)
    lines = data.draw(
        st.lists(
            _UNIONS[union].map(encoder.encode)
            | _mutated(_UNIONS[union].map(encoder.encode)).map(lambda raw: raw + b"\n")
            | JUNK,
            max_size=4,
        )
    )
    wire = b"".join(lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    framer: LineFramer[Any] = LineFramer(
        union, max_line_bytes=data.draw(st.sampled_from([64, 4096]))
    )
    start = 0
    try:
        for end in [*cuts, len(wire)]:
            framer.receive_data(wire[start:end])
            start = end
            assert all(isinstance(m, union.__args__) for m in drain(framer))
    except RemoteProtocolError as exc:
        assert str(exc)
        with pytest.raises(RemoteProtocolError):  # broken for good
            framer.next_message()
