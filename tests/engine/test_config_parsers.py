"""Rates as text: the syntax, the unlimited rate, format and parse, bad values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.config.parsers import RateLimit
from engine.errors import ConfigError


def rate(count: int, per_seconds: float = 60.0) -> RateLimit:
    return RateLimit(count=count, per_seconds=per_seconds)


@pytest.mark.parametrize(
    ("text", "count", "per_seconds"),
    [
        ("20", 20, 60.0),
        ("0", 0, 60.0),
        ("5/2s", 5, 2.0),
        ("5/2", 5, 2.0),
        ("5/500ms", 5, 0.5),
        ("100/1m", 100, 60.0),
        ("10/1.5s", 10, 1.5),
        ("3/1h", 3, 3600.0),
        (" 7/.5s ", 7, 0.5),
        ("0/2s", 0, 2.0),
    ],
)
def test_rate_syntax(text: str, count: int, per_seconds: float) -> None:
    assert RateLimit.parse(text) == rate(count, per_seconds)


def test_unlimited_is_a_count_of_zero() -> None:
    assert RateLimit.parse("0").unlimited
    assert RateLimit.parse("0/5s").unlimited
    assert not RateLimit.parse("1/5s").unlimited


@pytest.mark.parametrize(
    ("limit", "text"),
    [(rate(20), "20"), (rate(0), "0"), (rate(5, 2.0), "5/2s"), (rate(10, 1.5), "10/1.5s")],
)
def test_rate_format(limit: RateLimit, text: str) -> None:
    assert limit.format() == text


@given(
    count=st.integers(min_value=0),
    per_seconds=st.floats(min_value=0, exclude_min=True, allow_infinity=False),
)
def test_format_then_parse_is_the_identity(count: int, per_seconds: float) -> None:
    limit = RateLimit(count=count, per_seconds=per_seconds)
    assert RateLimit.parse(limit.format()) == limit


@pytest.mark.parametrize(
    ("count", "per_seconds"), [(-1, 1.0), (1, 0.0), (1, -1.0), (1, math.inf), (1, math.nan)]
)
def test_rate_limit_refuses_bad_values(count: int, per_seconds: float) -> None:
    with pytest.raises(ConfigError):
        RateLimit(count=count, per_seconds=per_seconds)


def test_parse_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^X='5/0s' is not a rate: the window must be"):
        RateLimit.parse("5/0s", source="X")
