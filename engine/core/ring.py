"""The bus's replay ring: the most recent events, bounded in number and in
(estimated) bytes.

Design notes
------------
A count alone does not bound memory: one event may carry a long error
message. Each event is charged a fixed share (its objects) plus the length
of its error text, the only field of unbounded size an event carries; the
oldest events leave while either bound is exceeded. The newest event is
always kept, however large.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

from protocols.events import Event

__all__ = ["DEFAULT_RING_BYTES", "ReplayRing", "event_bytes"]

#: The estimated bytes the ring keeps by default: ten thousand ordinary
#: events take a tenth of it, so the count bounds them; ten thousand with
#: errors of several KiB each (tracebacks) reach it.
DEFAULT_RING_BYTES = 64 * 1024 * 1024

#: What an event's objects take beside its error text (measured: a
#: ``job:progress`` event with its data is about 400 bytes in memory).
_EVENT_OVERHEAD = 512


def event_bytes(event: Event) -> int:
    """The memory ``event`` is charged in the ring."""
    error = getattr(event.data, "error", None)
    return _EVENT_OVERHEAD + (len(error) if isinstance(error, str) else 0)


class ReplayRing:
    """Recent events, oldest first: at most ``max_events`` of them and
    ``max_bytes`` of ``event_bytes``."""

    def __init__(self, max_events: int, max_bytes: int = DEFAULT_RING_BYTES) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: collections.deque[tuple[Event, int]] = collections.deque()
        self.bytes = 0

    def append(self, event: Event) -> None:
        """Keep ``event``, letting the oldest go while a bound is exceeded."""
        size = event_bytes(event)
        self._events.append((event, size))
        self.bytes += size
        events = self._events
        while len(events) > 1 and (len(events) > self.max_events or self.bytes > self.max_bytes):
            self.bytes -= events.popleft()[1]

    @property
    def first(self) -> Event | None:
        """The oldest event kept, or None."""
        return self._events[0][0] if self._events else None

    def __iter__(self) -> Iterator[Event]:
        return (event for event, _ in self._events)

    def __len__(self) -> int:
        return len(self._events)
