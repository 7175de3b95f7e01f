"""Whatever a peer sends, the framer answers with ``ProtocolError`` or a valid message.

Design notes
------------
Two kinds of property live here. "Never anything else": for arbitrary bytes
and arbitrary JSON objects, draining the framer yields valid messages or
raises ``RemoteProtocolError``, and no other exception. "Always an error":
for inputs built to be invalid (no ``}`` anywhere, a non-object, an unknown
tag, an extra key, a missing field, a value of the wrong JSON kind), the
framer raises ``RemoteProtocolError`` and stays broken.

Wrong-kind values are derived from each field's type hint, so a field added
to a message is covered without touching this file.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from protocols import ipc, jsontext
from protocols.codec import CONVERTER, camel_case
from protocols.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from protocols.framing import DEFAULT_MAX_LINE_BYTES, NEED_DATA, LineFramer
from tests.protocols.strategies import (
    CHILD_MESSAGES,
    FLOATS,
    INT64,
    JSON,
    JSON_OBJECTS,
    PARENT_MESSAGES,
    SETTINGS,
    TEXT,
    drain,
)

UNIONS = {ipc.ParentMessage: PARENT_MESSAGES, ipc.ChildMessage: CHILD_MESSAGES}
ALL_TAGS = tuple(sorted({*ipc.PARENT_MESSAGE_TAGS.values(), *ipc.CHILD_MESSAGE_TAGS.values()}))

KINDS: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": INT64,
    "float": FLOATS,
    "string": TEXT,
    "array": st.lists(JSON, max_size=3),
    "object": JSON_OBJECTS,
}


#: One valid message per union, fed after an error to show the framer stays broken.
VALID = {ipc.ParentMessage: ipc.Shutdown(), ipc.ChildMessage: ipc.Done(completed=0, failed=0)}


def framer_for(union: Any, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> LineFramer[Any]:
    return LineFramer(union, max_line_bytes=max_line_bytes)


def assert_refused(union: Any, wire: bytes, framer: LineFramer[Any] | None = None) -> None:
    """``wire`` breaks a framer for good, with a ``RemoteProtocolError`` only."""
    framer = framer_for(union) if framer is None else framer
    framer.receive_data(wire)
    with pytest.raises(RemoteProtocolError) as refused:
        drain(framer)
    assert str(refused.value)
    framer.receive_data(framer_for(union).encode(VALID[union]))
    with pytest.raises(RemoteProtocolError):
        framer.next_message()


def drain_or_refuse(framer: LineFramer[Any], union: Any, wire: bytes) -> None:
    """Feeding ``wire`` yields members of ``union``, or breaks the framer."""
    framer.receive_data(wire)
    try:
        messages = drain(framer)
    except RemoteProtocolError:
        with pytest.raises(RemoteProtocolError):
            framer.next_message()
    else:
        assert all(isinstance(message, union.__args__) for message in messages)


# --- never anything but ProtocolError -------------------------------------------


@SETTINGS
@given(st.sampled_from(list(UNIONS)), st.binary(max_size=300))
def test_arbitrary_bytes(union: Any, junk: bytes) -> None:
    drain_or_refuse(framer_for(union), union, junk + b"\n")


@SETTINGS
@given(st.sampled_from(list(UNIONS)), JSON_OBJECTS, st.none() | st.sampled_from(ALL_TAGS))
def test_arbitrary_objects(union: Any, junk: dict[str, Any], tag: str | None) -> None:
    if tag is not None:
        junk = {**junk, "type": tag}
    drain_or_refuse(framer_for(union), union, jsontext.dumps(junk) + b"\n")


# --- always ProtocolError -------------------------------------------------------


@SETTINGS
@given(st.sampled_from(list(UNIONS)), st.binary(max_size=300).filter(lambda b: b"}" not in b))
def test_bytes_that_hold_no_object(union: Any, junk: bytes) -> None:
    assert_refused(union, junk + b"\n")


@SETTINGS
@given(st.sampled_from(list(UNIONS)), JSON.filter(lambda value: not isinstance(value, dict)))
def test_json_that_is_not_an_object(union: Any, value: Any) -> None:
    assert_refused(union, jsontext.dumps(value) + b"\n")


@SETTINGS
@given(st.sampled_from(list(UNIONS)), JSON_OBJECTS, JSON)
def test_unknown_or_missing_tags(union: Any, junk: dict[str, Any], tag: Any) -> None:
    assume(tag not in ALL_TAGS)
    junk = (
        {**junk, "type": tag}
        if tag is not None
        else {k: v for k, v in junk.items() if k != "type"}
    )
    assert_refused(union, jsontext.dumps(junk) + b"\n")


@SETTINGS
@given(st.data())
def test_tags_of_the_other_direction(data: st.DataObject) -> None:
    union, other = data.draw(st.permutations(list(UNIONS)))
    message = data.draw(UNIONS[other])
    raw = CONVERTER.unstructure(message, other)
    assume(raw["type"] not in _tags(union))
    assert_refused(union, jsontext.dumps(raw) + b"\n")


@SETTINGS
@given(st.data(), TEXT, JSON)
def test_extra_keys(data: st.DataObject, key: str, value: Any) -> None:
    union = data.draw(st.sampled_from(list(UNIONS)))
    raw = CONVERTER.unstructure(data.draw(UNIONS[union]), union)
    assume(key not in raw)
    assert_refused(union, jsontext.dumps({**raw, key: value}) + b"\n")


@SETTINGS
@given(st.data())
def test_missing_fields(data: st.DataObject) -> None:
    union = data.draw(st.sampled_from(list(UNIONS)))
    message = data.draw(UNIONS[union])
    required = [
        camel_case(field.name)
        for field in attrs.fields(type(message))
        if field.default is attrs.NOTHING
    ]
    assume(required)
    raw = CONVERTER.unstructure(message, union)
    del raw[data.draw(st.sampled_from(required))]
    assert_refused(union, jsontext.dumps(raw) + b"\n")


@SETTINGS
@given(st.data())
def test_values_of_the_wrong_kind(data: st.DataObject) -> None:
    union = data.draw(st.sampled_from(list(UNIONS)))
    message = data.draw(UNIONS[union])
    raw = CONVERTER.unstructure(message, union)
    target, key, hint = data.draw(st.sampled_from(_typed_fields(type(message), raw)))
    target[key] = data.draw(_wrong_value(hint))
    assert_refused(union, jsontext.dumps(raw) + b"\n")


@pytest.mark.parametrize(
    ("union", "raw"),
    [
        (ipc.ParentMessage, {"type": "begin", "batchId": "b", "concurrency": 0}),
        (ipc.ParentMessage, {"type": "run-jobs", "jobs": {}}),
        (ipc.ParentMessage, {"type": "run-jobs", "jobs": ""}),
        (
            ipc.ParentMessage,
            {
                "type": "run-jobs",
                "jobs": [{"jobId": "j", "type": "t", "payload": 1, "attempt": 0}],
            },
        ),
        (ipc.ChildMessage, {"type": "job-progress", "jobId": "j", "progress": 101}),
        (ipc.ChildMessage, {"type": "job-progress", "jobId": "j"}),
        (ipc.ChildMessage, {"type": "job-failed", "jobId": "j", "error": None}),
        (ipc.ChildMessage, {"type": "ready", "pid": True}),
        (ipc.ChildMessage, {"type": "ready", "pid": 1.5}),
        (ipc.ChildMessage, {"type": "ready", "pid": "1"}),
        (ipc.ChildMessage, {"type": ["ready"], "pid": 1}),
    ],
)
def test_invalid_values(union: Any, raw: dict[str, Any]) -> None:
    assert_refused(union, jsontext.dumps(raw) + b"\n")


def test_errors_name_the_wire_path() -> None:
    framer = framer_for(ipc.ParentMessage)
    job = {"jobId": "j", "type": "t", "payload": None, "attempt": "1"}
    framer.receive_data(jsontext.dumps({"type": "run-jobs", "jobs": [job]}) + b"\n")
    with pytest.raises(RemoteProtocolError, match=r"\$\.jobs\[0\]\.attempt"):
        framer.next_message()


def test_a_bad_line_after_good_ones() -> None:
    framer = framer_for(ipc.ChildMessage)
    good = framer.encode(ipc.Ready(pid=7))
    framer.receive_data(good + b"{oops}\n" + good)
    assert framer.next_message() == ipc.Ready(pid=7)
    with pytest.raises(RemoteProtocolError, match="not JSON"):
        framer.next_message()
    with pytest.raises(RemoteProtocolError):
        framer.next_message()


# --- oversized frames -------------------------------------------------------------


@SETTINGS
@given(st.integers(min_value=1, max_value=64), st.binary(min_size=1, max_size=200))
def test_oversized_without_newline(limit: int, junk: bytes) -> None:
    framer = framer_for(ipc.ChildMessage, max_line_bytes=limit)
    junk = junk.replace(b"\n", b" ")
    framer.receive_data(junk)
    if len(junk) <= limit:
        assert framer.next_message() is NEED_DATA
        framer.receive_data(b"x" * (limit + 1 - len(junk)))
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        framer.next_message()
    with pytest.raises(RemoteProtocolError):
        framer.next_message()


@SETTINGS
@given(CHILD_MESSAGES)
def test_oversized_whole_line(message: ipc.ChildMessage) -> None:
    line = framer_for(ipc.ChildMessage).encode(message)
    at_limit = framer_for(ipc.ChildMessage, max_line_bytes=len(line) - 1)
    at_limit.receive_data(line)
    assert at_limit.next_message() == message
    below = framer_for(ipc.ChildMessage, max_line_bytes=len(line) - 2)
    assert_refused(ipc.ChildMessage, line, below)


# --- what we refuse to send ---------------------------------------------------------


class Opaque:
    """Not JSON: no converter hook, no orjson support."""


@pytest.mark.parametrize(
    "message",
    [
        ipc.JobCompleted(job_id="j", result=Opaque()),
        ipc.JobCompleted(job_id="j", result=[2**64, Opaque()]),
        ipc.JobCompleted(job_id="j", result={"deep": [-(2**70), Opaque()]}),
        ipc.ChildFailed(error="lone \ud800 surrogate"),
        ipc.Shutdown(),
        "ready",
        None,
    ],
    ids=[
        "object",
        "huge-int-key",
        "nested-huge-int-object",
        "surrogate",
        "wrong-union",
        "str",
        "none",
    ],
)
def test_encode_refuses_what_json_cannot_carry(message: Any) -> None:
    framer = framer_for(ipc.ChildMessage)
    with pytest.raises(LocalProtocolError):
        framer.encode(message)
    framer.receive_data(framer.encode(ipc.Ready(pid=1)))
    assert framer.next_message() == ipc.Ready(pid=1)


def test_all_errors_share_one_root() -> None:
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)


# --- helpers ------------------------------------------------------------------------


def _tags(union: Any) -> set[str]:
    table = ipc.PARENT_MESSAGE_TAGS if union is ipc.ParentMessage else ipc.CHILD_MESSAGE_TAGS
    return set(table.values())


def _typed_fields(cls: type[Any], raw: dict[str, Any]) -> list[tuple[dict[str, Any], str, Any]]:
    """``(container, key, type hint)`` for every field with a checked type, nested ones too."""
    hints = typing.get_type_hints(cls)
    found: list[tuple[dict[str, Any], str, Any]] = []
    for field in attrs.fields(cls):
        hint, key = hints[field.name], camel_case(field.name)
        if hint is Any or key not in raw:  # left off the wire while at its default
            continue
        found.append((raw, key, hint))
        element = _element_class(hint)
        if element is not None:
            for item in raw[key]:
                found.extend(_typed_fields(element, item))
        nested = _object_class(hint)
        if nested is not None and isinstance(raw[key], dict):
            found.extend(_typed_fields(nested, raw[key]))
    if not found:
        # A message without fields still refuses anything extra.
        found.append((raw, "unexpected", Any))
    return found


def _element_class(hint: Any) -> type[Any] | None:
    if typing.get_origin(hint) is tuple:
        element = typing.get_args(hint)[0]
        return element if attrs.has(element) else None
    return None


def _object_class(hint: Any) -> type[Any] | None:
    """The message class of a field holding one (optionally), else None."""
    members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return next((member for member in members if attrs.has(member)), None)


def _wrong_value(hint: Any) -> st.SearchStrategy[Any]:
    if hint is Any:
        return JSON
    accepted, enum_values = _accepted_kinds(hint)
    wrong = [strategy for kind, strategy in KINDS.items() if kind not in accepted]
    if "integer" in accepted and "float" not in accepted:
        # A whole float is an integer on the wire (3.0 is 3), so only
        # fractional ones are of the wrong kind.
        wrong.remove(KINDS["float"])
        wrong.append(FLOATS.filter(lambda number: not number.is_integer()))
    if enum_values:
        wrong.append(TEXT.filter(lambda text: text not in enum_values))
    return st.one_of(wrong)


def _accepted_kinds(hint: Any) -> tuple[set[str], set[str]]:
    """JSON kinds a field of type ``hint`` accepts, and the strings of an enum."""
    if isinstance(hint, types.UnionType):
        kinds: set[str] = set()
        values: set[str] = set()
        for member in typing.get_args(hint):
            member_kinds, member_values = _accepted_kinds(member)
            kinds |= member_kinds
            values |= member_values
        return kinds, values
    if hint is type(None):
        return {"null"}, set()
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return set(), {member.value for member in hint}
    if typing.get_origin(hint) is tuple:
        return {"array"}, set()
    if attrs.has(hint):
        return {"object"}, set()
    simple = {str: {"string"}, int: {"integer"}, float: {"integer", "float"}, bool: {"boolean"}}
    return simple[hint], set()
