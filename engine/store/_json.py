"""Payloads, results and options as stored JSON text, integers of any size included.

orjson is fast but refuses integers beyond 64 bits when writing, and reads
them back as floats. The text it writes never starts with whitespace, so a
value it refuses is written by the standard library with one leading space
(still plain JSON), and text that starts with a space is read back by the
standard library, which keeps every integer exact. Values that fit, nearly
all of them, take the fast path both ways.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dump", "load"]

_WIDE = " "  # marks text written by the standard library


def dump(value: Any) -> str:
    """``value`` as JSON text.

    Raises:
        TypeError: the value is not JSON-serialisable.
    """
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:  # a TypeError
        if "64-bit" not in str(exc):
            raise
    return _WIDE + json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def load(text: str) -> Any:
    """The value of JSON text written by ``dump``."""
    if text.startswith(_WIDE):
        return json.loads(text)
    return orjson.loads(text)
