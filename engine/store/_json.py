"""Payloads, results and options as stored JSON text, integers of any size included.

orjson is fast but refuses integers beyond 64 bits when writing, and reads
them back as floats. The text it writes never starts with whitespace, so a
value it refuses is written by the standard library with one leading space
(still plain JSON), and text that starts with a space is read back by the
standard library, which keeps every integer exact. Values that fit, nearly
all of them, take the fast path both ways.

Reading is where a store meets what it holds: text that is not JSON, or a
record that does not fit (a value of the wrong kind, a field missing),
means the store holds what this version did not write, and ``reading``
turns it into a ``StoreError`` naming the record, never a bare
``ValueError`` that an API would answer as a bug.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import orjson

from engine.errors import StoreError

__all__ = ["dump", "load", "reading"]

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
    """The value of JSON text written by ``dump``.

    Raises:
        StoreError: ``text`` is not JSON text.
    """
    with reading("JSON value"):
        if not isinstance(text, str):
            raise TypeError(f"expected text, got {type(text).__name__}")
        if text.startswith(_WIDE):
            return json.loads(text)
        return orjson.loads(text)


@contextlib.contextmanager
def reading(what: str) -> Iterator[None]:
    """Decode a stored ``what`` in the block: a record that cannot be read
    (``ValueError``, ``KeyError``, ``TypeError``) becomes a ``StoreError``.
    Only decoding goes in the block (a nested block's ``StoreError`` is
    named after this one's ``what``)."""
    try:
        yield
    except (ValueError, KeyError, TypeError, StoreError) as exc:
        # A record's JSON field read in its own block names the record, not the field.
        cause = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ else exc
        message = f"the store holds a {what} this version cannot read: {cause!s:.200}"
        raise StoreError(message) from cause
