"""Newline-delimited JSON framing, sans-IO.

One message is one line of UTF-8 JSON ending in ``\\n``. The caller owns every
read and write: it feeds bytes in with ``receive_data``, pulls messages out
with ``next_message`` (``NEED_DATA`` when no whole line is buffered yet) and
turns messages into bytes with ``encode``. ``reports_lines`` joins child
messages already encoded into ``Reports`` lines (``protocols.ipc``).

A frame longer than ``max_line_bytes`` is refused as soon as the buffer holds
more than that without a newline, so a peer cannot make us buffer without
bound. Every malformed frame raises ``RemoteProtocolError``; after one, the
framer is broken and refuses to continue (the stream has lost its footing).
"""

from __future__ import annotations

import enum
import types
from collections.abc import Sequence
from typing import Any, Generic, NoReturn, TypeVar, Union, get_args, get_origin

import cattrs
import orjson

from protocols import ipc, jsontext
from protocols.codec import CONVERTER, describe_error, json_kind
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.fast_decode import fast_structurer

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "NEED_DATA",
    "REPORTS_LINE_BYTES",
    "LineFramer",
    "NeedData",
    "reports_lines",
]

#: Results can be large (an embedding of a long document, a thumbnail as
#: base64), so the default line limit is generous; it exists to stop a broken
#: peer from filling memory, not to shape normal traffic.
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024

M = TypeVar("M")


class NeedData(enum.Enum):
    """Sentinel type: ``next_message`` needs more bytes."""

    NEED_DATA = "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA


class LineFramer(Generic[M]):
    """Decodes a stream of lines into ``message_type`` values, and encodes back.

    Args:
        message_type: what ``next_message`` decodes to (a message union).
        max_line_bytes: the largest frame accepted, newline excluded.
    """

    def __init__(self, message_type: Any, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._message_type = message_type
        self._max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._scan_from = 0
        self._members = _union_members(message_type)
        # The converter's own hook for the type, looked up once: dispatching
        # on a union per message costs more than the encoding itself.
        self._unstructure = CONVERTER.get_unstructure_hook(message_type)
        self._fast = fast_structurer(message_type)
        self._broken: RemoteProtocolError | None = None

    def receive_data(self, data: bytes | bytearray) -> None:
        """Append bytes read from the peer; ``b""`` is not EOF here."""
        self._buffer += data

    @property
    def buffered(self) -> int:
        """How many received bytes wait to be framed (a partial line at EOF)."""
        return len(self._buffer)

    def next_message(self) -> M | NeedData:
        """The next whole message, or ``NEED_DATA``.

        Raises:
            RemoteProtocolError: the next frame is oversized, not JSON, or not
                a valid message; the framer stays broken afterwards.
        """
        if self._broken is not None:
            raise self._broken
        newline = self._buffer.find(b"\n", self._scan_from)
        if newline < 0:
            self._scan_from = len(self._buffer)
            if len(self._buffer) > self._max_line_bytes:
                self._fail(f"frame exceeds {self._max_line_bytes} bytes without a newline")
            return NEED_DATA
        line = bytes(self._buffer[:newline])
        del self._buffer[: newline + 1]
        self._scan_from = 0
        if len(line) > self._max_line_bytes:
            self._fail(f"frame of {len(line)} bytes exceeds {self._max_line_bytes}")
        return self._decode(line)

    def encode(self, message: Any) -> bytes:
        """One message as one line.

        Raises:
            LocalProtocolError: the message is not one this framer carries, or
                it holds something JSON cannot carry.
        """
        return self.encode_object(message) + b"\n"

    def encode_object(self, message: Any) -> bytes:
        """One message as its JSON object, without the newline (for
        ``reports_lines``).

        Raises:
            LocalProtocolError: as ``encode``.
        """
        if type(message) not in self._members:
            raise LocalProtocolError(
                f"cannot encode {type(message).__name__}: not a {_name(self._message_type)}"
            )
        try:
            return jsontext.dumps(self._unstructure(message))
        except (TypeError, ValueError) as exc:
            raise LocalProtocolError(f"cannot encode {type(message).__name__}: {exc}") from exc

    def _decode(self, line: bytes) -> M:
        try:
            raw = jsontext.load_own(line)
        except orjson.JSONDecodeError as exc:
            self._fail(f"frame is not JSON: {exc}")
        if not isinstance(raw, dict):
            self._fail(f"frame is {json_kind(raw)}, not an object")
        tag = raw.get("type")
        if len(self._members) > 1 and not isinstance(tag, str):
            self._fail(f"message type must be a string, got {json_kind(tag)}")
        message = self._fast(raw)
        if message is not None:
            return message  # type: ignore[no-any-return]
        try:
            return CONVERTER.structure(raw, self._message_type)  # type: ignore[no-any-return]
        except KeyError:
            self._fail(f"unknown message type {tag!r:.80}")
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            self._fail(f"invalid {tag!r:.80} message: {'; '.join(describe_error(exc))}")

    def _fail(self, reason: str) -> NoReturn:
        self._broken = RemoteProtocolError(reason)
        raise self._broken


#: A ``Reports`` line is closed once it holds this many bytes of messages
#: (a message that crosses the mark still goes in), far below any line limit.
REPORTS_LINE_BYTES = 1024 * 1024

_REPORTS_OPEN = b'{"type":"%s","facts":[' % ipc.CHILD_LINE_TAGS[ipc.Reports].encode()


def reports_lines(objects: Sequence[bytes]) -> bytes:
    """Child messages encoded by ``encode_object``, in order, as few lines
    as ``REPORTS_LINE_BYTES`` allows: a lone message as itself, several as
    one ``Reports`` (``protocols.ipc``)."""
    lines = []
    start = 0
    while start < len(objects):
        end, size = start, 0
        while end < len(objects) and size < REPORTS_LINE_BYTES:
            size += len(objects[end])
            end += 1
        if end - start == 1:
            lines.append(objects[start] + b"\n")
        else:
            taken = objects[start:end]
            # A message with a wide integer makes the whole line one for
            # the exact reader (``jsontext``).
            wide = any(text[:1] == jsontext.WIDE for text in taken)
            opening = jsontext.WIDE + _REPORTS_OPEN if wide else _REPORTS_OPEN
            lines.append(opening + b",".join(taken) + b"]}\n")
        start = end
    return b"".join(lines)


def _union_members(tp: Any) -> tuple[Any, ...]:
    if isinstance(tp, types.UnionType) or get_origin(tp) is Union:
        return get_args(tp)
    return (tp,)


def _name(tp: Any) -> str:
    return " | ".join(getattr(member, "__name__", repr(member)) for member in _union_members(tp))
