"""Payloads, results and options as stored JSON text, integers of any size included.

The text is ``protocols.jsontext``'s: orjson's where orjson can write the
value, else the standard library's behind one leading space, which is how
``load`` knows to read it exactly. Values that fit, nearly all of them, take
the fast path both ways.

Reading is where a store meets what it holds: text that is not JSON, or a
record that does not fit (a value of the wrong kind, a field missing),
means the store holds what this version did not write, and ``reading``
turns it into a ``StoreError`` naming the record, never a bare
``ValueError`` that an API would answer as a bug.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from engine.errors import StoreError
from protocols import jsontext

__all__ = ["dump", "load", "read", "reading"]


def dump(value: Any) -> str:
    """``value`` as JSON text.

    Raises:
        TypeError: the value is not JSON-serialisable.
    """
    return jsontext.dumps(value).decode()


def load(text: str) -> Any:
    """The value of JSON text written by ``dump``.

    Raises:
        StoreError: ``text`` is not JSON text.
    """
    with reading("JSON value"):
        return read(text)


def read(text: str) -> Any:
    """``load`` for a caller's own ``reading`` block (a record's field),
    which names what could not be read.

    Raises:
        ValueError, TypeError: ``text`` is not JSON text.
    """
    if type(text) is not str:
        raise TypeError(f"expected text, got {type(text).__name__}")
    return jsontext.load_own(text)


@contextlib.contextmanager
def reading(what: str) -> Iterator[None]:
    """Decode a stored ``what`` in the block: a record that cannot be read
    (``ValueError``, ``KeyError``, ``TypeError``, ``OverflowError``) becomes
    a ``StoreError``. Only decoding goes in the block (a nested block's ``StoreError`` is
    named after this one's ``what``)."""
    try:
        yield
    except (ValueError, KeyError, TypeError, OverflowError, StoreError) as exc:
        # A record's JSON field read in its own block names the record, not the field.
        cause = exc.__cause__ if isinstance(exc, StoreError) and exc.__cause__ else exc
        message = f"the store holds a {what} this version cannot read: {cause!s:.200}"
        raise StoreError(message) from cause
