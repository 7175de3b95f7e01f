"""How subscribers receive events: WebSocket text frames, arrays of them,
and Server-Sent Events chunks.

Design notes
------------
An event is framed two ways: a WebSocket text frame ``{"event", "seq",
"data"}`` and an SSE chunk ``id:``/``event:``/``data:`` whose data is one
line of JSON (orjson never writes a raw newline, so one ``data:`` line is
always enough).

With ``?batch=1`` on ``/ws`` each WebSocket message is a JSON array of such
frames, in seq order: everything queued for that client since the server's
last write to it. The server encodes each event's frame once for all its
subscribers, so an array is made of those very frames, joined
(``ws_array``), never encoded again per client. ``parse_ws_message`` reads
either shape, so a client's reading does not depend on what it asked for;
an array holds at least one frame and its seqs increase, as the server
writes it, and anything else is refused with the path of the first fault
(``@ $[3].seq``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from protocols import jsontext
from protocols.codec import (
    CONVERTER,
    at_least_one,
    decode_json,
    encode_json,
    json_kind,
    structure_as,
)
from protocols.errors import RemoteProtocolError
from protocols.events import EVENT_TYPES, Event, EventData, decode_event

__all__ = ["parse_ws_frame", "parse_ws_message", "sse_frame", "ws_array", "ws_frame"]


@attrs.frozen(kw_only=True)
class _Frame:
    """A WebSocket frame as a client reads it: ``data`` is decoded once the
    name has picked its class. (``ws_frame`` writes the same keys, in this
    order, without building one.)"""

    event: str
    seq: int = attrs.field(validator=at_least_one)
    data: Any


#: Each event data class's name, as text and as bytes, and the converter's
#: own unstructure hook for it (its camelCase names, its fields left out
#: while None), looked up once: a frame is then one dict around the hook's
#: output and one call of the JSON encoder, the very bytes the converter
#: writes for a ``_Frame``, with no dispatch on the data's class per event.
_WIRE: dict[type[EventData], tuple[str, bytes, Callable[[Any], dict[str, Any]]]] = {
    cls: (name, name.encode(), CONVERTER.get_unstructure_hook(cls))
    for name, cls in EVENT_TYPES.items()
}


def ws_frame(event: Event) -> str:
    """``event`` as a WebSocket text frame: ``{"event", "seq", "data"}``.

    Raises:
        LocalProtocolError: ``data`` holds something JSON cannot carry.
    """
    data = event.data
    name, _, unstructure = _WIRE[type(data)]
    frame = {"event": name, "seq": event.seq, "data": unstructure(data)}
    return _encode(frame, event).decode()


def ws_array(frames: Iterable[str]) -> str:
    """Frames made by ``ws_frame``, in seq order, as one ``?batch=1`` message."""
    return f"[{','.join(frames)}]"


def sse_frame(event: Event) -> bytes:
    """``event`` as one Server-Sent Events chunk, blank line included.

    Raises:
        LocalProtocolError: ``data`` holds something JSON cannot carry.
    """
    data = event.data
    _, name, unstructure = _WIRE[type(data)]
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.seq,
        name,
        _encode(unstructure(data), event),
    )


def _encode(value: Any, event: Event) -> bytes:
    """``value`` (unstructured) as JSON, naming ``event`` in the error.

    Raises:
        LocalProtocolError: ``value`` holds something JSON cannot carry.
    """
    try:
        return jsontext.dumps(value)
    except (TypeError, ValueError):
        # Encoding again raises codec's own error; the name is built only then.
        return encode_json(value, f"{event.event} #{event.seq}")


def _frame_event(value: Any, path: str) -> Event:
    frame = structure_as(value, _Frame, "event", path)
    return decode_event(frame.event, frame.seq, frame.data, "event", path)


def parse_ws_frame(raw: str | bytes) -> Event:
    """The event a WebSocket text frame carries (the client's side of ``ws_frame``).

    Raises:
        RemoteProtocolError: the frame is not JSON, not a valid event, or
            an event this version does not know.
    """
    return _frame_event(decode_json(raw, "event"), "$")


def parse_ws_message(raw: str | bytes) -> list[Event]:
    """The events of one WebSocket message: a single frame, or a ``?batch=1``
    array of frames (the client's side of ``ws_frame`` and ``ws_array``).

    Returns:
        The events in the order they came, which is seq order.

    Raises:
        RemoteProtocolError: not JSON; neither an object nor an array; an
            empty array; a frame that is not a valid event, or an event
            this version does not know; seqs that do not increase.
    """
    value = decode_json(raw, "event message")
    if isinstance(value, dict):
        return [_frame_event(value, "$")]
    if not isinstance(value, list):
        raise RemoteProtocolError(
            f"event message must be a frame object or an array of frames; got {json_kind(value)}"
        )
    if not value:
        raise RemoteProtocolError("event message is an empty array; it must hold frames")
    found = [_frame_event(item, f"$[{index}]") for index, item in enumerate(value)]
    for index in range(1, len(found)):
        if found[index].seq <= found[index - 1].seq:
            raise RemoteProtocolError(
                f"invalid event message: seq {found[index].seq} follows seq "
                f"{found[index - 1].seq}, out of seq order @ $[{index}].seq"
            )
    return found
