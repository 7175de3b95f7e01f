"""Event frames and burst messages, encoded once for every event client.

Design notes
------------
Every client of a batch is sent the same events, so each event's WebSocket
and SSE frames are encoded once (the frames of the last ``_FRAMES_KEPT``
seqs are kept, in a table with one slot per seq modulo that size, so
keeping one evicts nothing else), and so is each *burst*: the events one
client takes at once (``Subscription.receive_queued``) joined into one
message, a ``?batch=1`` JSON array or an SSE chunk. The clients of a batch woken by one
publication take the same events, so all but the first find their message
made; a burst is known by its first and last seq and its length, and
checked against the events it holds (two filters may take different events
between the same two seqs).

A message holds at most about ``WRITE_BUDGET`` bytes of frames; a burst
larger than that (a long replay) becomes several messages.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Generic, TypeVar

from protocols.events import Event
from protocols.frames import sse_frame, ws_array, ws_frame

__all__ = ["WRITE_BUDGET", "Frames"]

#: How many bytes of frames one message to a client holds at most (a frame
#: that crosses the mark still goes in): a ``?batch=1`` message stays far
#: below the 1 MiB a WebSocket client commonly accepts, and one write holds
#: its handler only briefly.
WRITE_BUDGET = 256 * 1024

_F = TypeVar("_F", str, bytes)

#: How many recent events keep their encoded frames. Subscribers of one
#: batch read the same events at about the same time, so a short memory is
#: enough for each event to be encoded once, not once per subscriber.
_FRAMES_KEPT = 4096

#: How many recent bursts keep their messages. The subscribers of one batch
#: that a publication wakes together take the same events, so they share
#: the burst's messages; a few dozen cover the bursts in flight. A burst is
#: kept only when it makes one message, so this many take at most this many
#: times ``WRITE_BUDGET`` (and commonly a few KiB each).
_BURSTS_KEPT = 32

_BurstKey = tuple[int, int, int]


class Frames:
    """Each event's WebSocket and SSE frames, and each burst's messages,
    encoded once for every client."""

    def __init__(self) -> None:
        self._ws = _Recent(ws_frame)
        self._sse = _Recent(sse_frame)
        self._arrays = _Bursts(self._ws, ws_array)
        self._chunks = _Bursts(self._sse, b"".join)

    def ws_frames(self, events: list[Event]) -> list[str]:
        """``events`` as WebSocket text frames, one each, in their order."""
        return self._ws.frames(events)

    def ws_arrays(self, events: list[Event]) -> list[str]:
        """``events`` as ``?batch=1`` messages: JSON arrays of their frames,
        each of about ``WRITE_BUDGET`` bytes at most."""
        return self._arrays.messages(events)

    def sse_chunks(self, events: list[Event]) -> list[bytes]:
        """``events`` as SSE chunks, each of about ``WRITE_BUDGET`` bytes at most."""
        return self._chunks.messages(events)


class _Recent(Generic[_F]):
    """The frames of the last ``_FRAMES_KEPT`` seqs, one slot per seq
    modulo that: a newer seq takes its slot over, nothing else is evicted."""

    def __init__(self, encode: Callable[[Event], _F]) -> None:
        self._encode: Callable[[Event], _F] = encode
        self._slots: list[tuple[int, _F] | None] = [None] * _FRAMES_KEPT

    def frames(self, events: list[Event]) -> list[_F]:
        """The frames of ``events``, encoded unless kept.

        Raises:
            LocalProtocolError: an event holds something JSON cannot carry.
        """
        slots = self._slots
        found: list[_F] = []
        for event in events:
            seq = event.seq
            index = seq % _FRAMES_KEPT
            slot = slots[index]
            if slot is not None and slot[0] == seq:
                found.append(slot[1])
            else:
                frame = self._encode(event)
                slots[index] = (seq, frame)
                found.append(frame)
        return found


class _Bursts(Generic[_F]):
    """Recent bursts' messages, by the events they hold."""

    def __init__(self, frames: _Recent[_F], join: Callable[[list[_F]], _F]) -> None:
        self._frames: _Recent[_F] = frames
        self._join: Callable[[list[_F]], _F] = join
        self._kept: collections.OrderedDict[_BurstKey, tuple[list[Event], list[_F]]] = (
            collections.OrderedDict()
        )

    def messages(self, events: list[Event]) -> list[_F]:
        """The messages of ``events`` (in seq order, at least one): their
        frames joined, a new message started once one reaches ``WRITE_BUDGET``."""
        key = (events[0].seq, events[-1].seq, len(events))
        kept = self._kept.get(key)
        # Two filters may take different events between the same two seqs.
        if kept is not None and kept[0] == events:
            return kept[1]
        frames = self._frames.frames(events)
        if sum(map(len, frames)) <= WRITE_BUDGET:
            messages = [self._join(frames)]  # what _groups makes of them, found sooner
        else:
            messages = [self._join(group) for group in _groups(frames)]
        if len(messages) == 1:
            self._kept[key] = (events, messages)
            if len(self._kept) > _BURSTS_KEPT:
                self._kept.popitem(last=False)
        return messages


def _groups(frames: list[_F]) -> list[list[_F]]:
    """``frames`` in runs that reach ``WRITE_BUDGET`` bytes at most by their
    last frame (a frame that crosses the mark ends its run)."""
    groups: list[list[_F]] = [[]]
    room = WRITE_BUDGET
    for frame in frames:
        if room <= 0:
            groups.append([])
            room = WRITE_BUDGET
        groups[-1].append(frame)
        room -= len(frame)
    return groups
