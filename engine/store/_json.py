"""Payloads, results and options as stored JSON text, integers of any size included.

The text is ``protocols.jsontext``'s: orjson's where orjson can write the
value, else the standard library's behind one leading space, which is how
``load`` knows to read it exactly. Values that fit, nearly all of them, take
the fast path both ways.
"""

from __future__ import annotations

from typing import Any

from protocols import jsontext

__all__ = ["dump", "load"]


def dump(value: Any) -> str:
    """``value`` as JSON text.

    Raises:
        TypeError: the value is not JSON-serialisable.
    """
    return jsontext.dumps(value).decode()


def load(text: str) -> Any:
    """The value of JSON text written by ``dump``."""
    return jsontext.load_own(text)
