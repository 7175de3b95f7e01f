"""The event log: events shared by every engine on one store, stamped with a
cluster-wide seq.

Design notes
------------
This is a capability of its own, not part of ``Store``: a store that has it
(Redis) lets every engine's bus publish into one log and follow what every
other engine published; a store without it (SQLite) leaves each engine's bus
local, with its own seq and its own replay ring. SQLite does not get it
because nothing there could wait for an append made by another process
short of polling the file, and every event burst would become a disk write on
the engine's hot path, for engines that by definition share one host and
are few. The engine asks ``isinstance(store, EventLog)``.

A log assigns each appended event the next seq, atomically with the append,
so the log's order is seq order, and seqs never repeat nor go backwards
while the store keeps its data. It keeps the newest events only (``retain``,
the contract's ``event_ring_size``); a reader that asks for older ones gets
what is left.

Appends are idempotent per burst: a publisher numbers its bursts 1, 2, 3…
and sends burst n+1 only once burst n was appended. When the reply to an
append is lost (the connection dropped after the request left), the
publisher sends the same burst again under the same number, and the log
answers with the seqs it gave the first time instead of appending twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from protocols.events import Event, EventData

__all__ = ["EventLog"]


@runtime_checkable
class EventLog(Protocol):
    """Events of every engine on the store, in seq order."""

    async def append_events(
        self, data: Sequence[EventData], *, retain: int, publisher: str, burst: int
    ) -> list[Event]:
        """Append a burst of events, stamping them with consecutive seqs, and
        drop all but the newest ``retain`` events of the log.

        Cancellation: atomic: the burst is appended entirely or not at all
        (and a retry under the same ``burst`` never appends it twice).

        Args:
            data: the events, in the order they get their seqs; at least one.
            retain: how many of the newest events the log keeps.
            publisher: who appends (unique to one bus for its whole life).
            burst: the publisher's number for this burst, counting from 1.

        Returns:
            The events as appended, with their seqs.

        Raises:
            StoreUnavailable: the store cannot be reached; whether the burst
                was appended is unknown (send it again under the same number).
            LocalProtocolError: an event holds something JSON cannot carry;
                nothing was appended.
        """
        ...

    async def read_events(
        self, after_seq: int, *, limit: int, wait_seconds: float = 0.0
    ) -> list[Event]:
        """Up to ``limit`` retained events with a seq above ``after_seq``, in seq
        order. An event this version cannot read (a newer engine wrote it) is
        left out.

        Cancellation: atomic; it only reads.

        Args:
            after_seq: the last seq the reader has; 0 for the oldest retained.
            limit: the most events to return, at least 1.
            wait_seconds: when there is none yet, how long to wait for one
                (0: return at once); at most a few seconds.

        Returns:
            The events; empty when none came within ``wait_seconds``.

        Raises:
            StoreUnavailable: the store cannot be reached.
        """
        ...
