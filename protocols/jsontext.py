"""JSON text with integers of any size: orjson when it can, the standard library when it cannot.

Design notes. orjson is the fast path everywhere, but it refuses to write an
integer beyond 64 bits (``TypeError``) and, worse, reads one back as a float
without a word. Payloads and results are users' data, where ``2**70`` is a
perfectly good JSON number, so every place that turns values into JSON text
or back goes through this module:

* ``dumps`` tries orjson; only when orjson refuses an integer does it write
  the value with the standard library, with ONE LEADING SPACE (still plain
  JSON, which allows whitespace around a value). orjson never writes leading
  whitespace, so the space marks text that needs the exact reader. The
  fallback keeps orjson's rules: non-finite floats become ``null``, keys must
  be strings, and any other object orjson knows (a datetime, a UUID) is
  written as orjson writes it.
* ``load_own`` reads text this module wrote (IPC lines, stored events): the
  leading space is the whole test, so the fast path costs one comparison.
* ``load_any`` reads text from anyone (HTTP bodies, WebSocket frames, a
  JSONL file): besides the marker, a run of 19 or more digits anywhere (the
  shortest integer orjson cannot hold exactly is ``-9223372036854775809``)
  sends it to the exact reader. orjson writes floats with at most 17
  significant digits, so its own output never trips this; a long digit run
  inside a string only costs speed.

The exact reader refuses ``NaN`` and ``Infinity`` as orjson does, and its
errors are raised as ``orjson.JSONDecodeError`` (a ``json.JSONDecodeError``
and a ``ValueError``), so callers catch one type whichever reader ran. The
standard library's limit on integer digits (``sys.get_int_max_str_digits``,
4300 by default) bounds both directions: a longer integer is refused with a
``ValueError``, never silently changed.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

__all__ = ["WIDE", "dumps", "load_any", "load_own"]

#: What leads text written by the standard library: text that joins
#: pieces ``dumps`` wrote (into an array) starts with it when any piece did.
WIDE = b" "
_WIDE = WIDE
_WIDE_TEXT = " "

# ``-9223372036854775809`` (one below int64) has 19 digits; anything orjson
# would read inexactly has at least that many in a row.
_WIDE_RUN = b"0" * 19
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")


def dumps(value: Any) -> bytes:
    """``value`` as UTF-8 JSON bytes, integers of any size exact.

    Raises:
        TypeError: the value holds something JSON cannot carry (an arbitrary
            object, a dict key that is not a string, an unencodable string).
        ValueError: an integer has more digits than Python will render.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:  # a TypeError
        if "64-bit" not in str(exc):
            raise
    text = json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return _WIDE + text.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate, as orjson refuses it
        raise TypeError(f"str is not valid UTF-8: {exc.reason}") from exc


def load_own(raw: str | bytes) -> Any:
    """The value of text ``dumps`` wrote.

    Raises:
        orjson.JSONDecodeError: ``raw`` is not JSON.
    """
    if raw[:1] in (_WIDE, _WIDE_TEXT):
        return _exact(raw)
    return orjson.loads(raw)


def load_any(raw: str | bytes) -> Any:
    """The value of any JSON text, integers of any size exact.

    Raises:
        orjson.JSONDecodeError: ``raw`` is not JSON.
    """
    data = raw.encode(errors="surrogatepass") if isinstance(raw, str) else raw
    if data[:1].isspace() or _WIDE_RUN in data.translate(_DIGITS_TO_ZERO):
        return _exact(raw)
    return orjson.loads(raw)


def _exact(raw: str | bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise orjson.JSONDecodeError(exc.msg, exc.doc, exc.pos) from exc
    except (ValueError, RecursionError) as exc:  # NaN, too many digits, bad encoding
        raise orjson.JSONDecodeError(str(exc), "", 0) from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _plain(value: Any) -> Any:
    """``value`` as the standard library's types, following orjson's rules."""
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError("Dict key must be str")
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return orjson.loads(orjson.dumps(value))
