"""JSON text keeps integers of any size exact, and orjson stays the fast path."""

from __future__ import annotations

import math
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given

from protocols import jsontext
from tests.protocols.strategies import JSON, SETTINGS


@SETTINGS
@given(JSON)
def test_every_json_value_round_trips_through_both_readers(value: Any) -> None:
    text = jsontext.dumps(value)
    assert jsontext.load_own(text) == value
    assert jsontext.load_any(text) == value
    assert jsontext.load_own(text.decode()) == value


def test_values_that_fit_are_orjson_text() -> None:
    value = {"n": 2**64 - 1, "m": -(2**63), "x": [1.5, "é"]}
    assert jsontext.dumps(value) == orjson.dumps(value)


@pytest.mark.parametrize("wide", [2**64, -(2**63) - 1, 2**70, -(10**300)])
def test_wide_integers_are_marked_and_exact(wide: int) -> None:
    text = jsontext.dumps({"deep": [wide, 0.5]})
    assert text.startswith(b" ")
    assert jsontext.load_own(text) == {"deep": [wide, 0.5]}


def test_any_text_with_a_wide_integer_is_read_exactly() -> None:
    assert jsontext.load_any(b'{"a":[-9223372036854775809]}') == {"a": [-(2**63) - 1]}
    assert jsontext.load_any('[123456789012345678901234567890, "x"]') == [
        123456789012345678901234567890,
        "x",
    ]
    # Only text marked as ours is trusted by the fast reader alone.
    assert jsontext.load_own(b"[123456789012345678901234567890]") != [
        123456789012345678901234567890
    ]


def test_the_fallback_follows_orjsons_rules() -> None:
    day = uuid.UUID(int=5)
    text = jsontext.dumps({"inf": math.inf, "nan": math.nan, "id": day, "n": 2**70})
    assert jsontext.load_own(text) == {"inf": None, "nan": None, "id": str(day), "n": 2**70}
    with pytest.raises(TypeError):
        jsontext.dumps({"n": 2**70, "x": object()})
    with pytest.raises(TypeError):
        jsontext.dumps([2**70, {1: 2}])
    with pytest.raises(TypeError):
        jsontext.dumps([2**70, "lone \ud800 surrogate"])


@pytest.mark.parametrize(
    "raw", [b" [1, NaN]", b"[12345678901234567890, Infinity]", b" {", b" [1", b" \xff"]
)
def test_the_exact_reader_refuses_what_orjson_refuses(raw: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        jsontext.load_any(raw)
    with pytest.raises(orjson.JSONDecodeError):
        jsontext.load_own(raw)
