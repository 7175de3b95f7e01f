"""The bus on a shared event log: what makes every engine's events every
engine's events (``EventBus.serve_log``).

Design notes
------------
On a store with an ``EventLog`` (Redis) the log, not the bus, gives out
seqs, so they are cluster-wide. ``LogLink`` joins a bus to the log with two
tasks, both owned by whoever runs ``EventBus.serve_log`` (the engine's
nursery):

* the *publisher* appends what the bus was given. ``queue`` (called by
  ``EventBus.publish``, never blocking) puts the event in a bounded queue and
  wakes the publisher; the publisher sends everything queued (up to
  ``MAX_BURST``) in one append, so events published in the same scheduling
  tick, and whatever piles up while an append is on the wire, take one round
  trip between them. A burst is sent again, under the same burst number,
  until it is appended: the log appends a burst once however often its
  reply was lost.
* the *follower* reads the log after the last seq it has and hands each
  event to the bus's fan-out, in seq order, each once, this engine's own
  events included: a subscriber sees an event when the log has it, with the
  seq every engine's subscribers see.

Before the link serves, it reads the retained log into the bus's ring
(``catch_up``), so a subscriber resuming from a seq (``resumeFrom``,
``Last-Event-ID``) is replayed from the log's events on any engine, even
one that just started.

When the store cannot be reached, both tasks retry with a backoff from
``FIRST_RETRY_SECONDS`` doubling to ``MAX_RETRY_SECONDS``; the follower
resumes after its last seq, so it loses nothing and repeats nothing. The
publisher keeps what was published meanwhile, up to ``unsent_limit`` events
(beyond the burst on the wire); past it, each new event pushes out the
oldest unsent one, which is lost and counted (``lost``): the newest events
carry the latest state of each run (progress is a snapshot), so they are
the ones worth keeping.
"""

from __future__ import annotations

import collections
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from engine.errors import StoreUnavailable
from protocols.errors import LocalProtocolError
from protocols.events import Event, EventData, stored_frame

if TYPE_CHECKING:
    from engine.store.event_log import EventLog

__all__ = ["FIRST_RETRY_SECONDS", "MAX_BURST", "MAX_RETRY_SECONDS", "MIN_RETAINED", "LogLink"]

log = logging.getLogger("batchyard.events")

#: The most events in one append. A burst is one Lua script that runs
#: alone on the server; a thousand events take it about a millisecond.
MAX_BURST = 1000

#: The fewest events the log keeps, whatever the ring size: events a
#: follower has not read yet must still be there when it reads, and it may be
#: several bursts behind. Replay is bounded by each bus's ring all the same.
MIN_RETAINED = 10 * MAX_BURST

#: The most events one read returns (a reply of some hundred kilobytes).
_READ_LIMIT = 1000

#: How long the follower's read waits for an event before it asks again.
#: Nothing depends on it: a new event ends the wait at once.
_TAIL_WAIT_SECONDS = 2.0

#: Retry delays after a failed append or read. A dropped connection comes
#: back within a fraction of a second; a restarting server takes seconds, and
#: two seconds between tries is then a small share of the wait.
FIRST_RETRY_SECONDS = 0.05
MAX_RETRY_SECONDS = 2.0


class LogLink:
    """Joins a bus to an event log; see the module notes.

    Args:
        log: the store's event log.
        deliver: the bus's fan-out, called with each event of the log once,
            in seq order.
        ring_size: how many events the bus keeps for replay; the log keeps
            as many, and at least ``MIN_RETAINED``.
        unsent_limit: how many events may wait for the publisher.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        deliver: Callable[[Event], None],
        ring_size: int,
        unsent_limit: int,
    ) -> None:
        self._log = log
        self._deliver = deliver
        self._retain = max(ring_size, MIN_RETAINED)
        self._unsent: collections.deque[EventData] = collections.deque()
        self._unsent_limit = unsent_limit
        self._publisher = uuid.uuid4().hex
        self._burst = 0
        self._sending = 0
        self._appended_through = 0
        self._queued = trio.lowlevel.ParkingLot()
        self._moved = trio.lowlevel.ParkingLot()
        self.last_seq = 0
        self.published = 0
        self.lost = 0

    @property
    def unsent(self) -> int:
        """Events published here and not yet in the log."""
        return len(self._unsent) + self._sending

    def queue(self, data: EventData) -> None:
        """Hand ``data`` to the publisher; never blocks."""
        if len(self._unsent) >= self._unsent_limit:
            if not self.lost:
                log.warning(
                    "more than %d events wait for the store: the oldest are lost",
                    self._unsent_limit,
                )
            self._unsent.popleft()
            self.lost += 1
        self._unsent.append(data)
        self._queued.unpark_all()

    async def catch_up(self) -> None:
        """Deliver every event the log retains, without waiting for more.

        Cancellation: atomic per read; what was delivered stays delivered.

        Raises:
            StoreUnavailable: the store cannot be reached.
        """
        while len(await self._read(wait_seconds=0.0)) == _READ_LIMIT:
            pass

    async def run(self) -> None:
        """Publish and follow until cancelled.

        Cancellation: the usual way to end it; unsent events stay unsent.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._publish)
            nursery.start_soon(self._follow)

    async def flush(self) -> None:
        """Return once every event queued so far is in the log and was
        delivered back; the caller bounds the wait (the store may be down).

        Cancellation: atomic; it only waits.
        """
        while self.unsent or self.last_seq < self._appended_through:
            await self._moved.park()

    async def _publish(self) -> None:
        while True:
            while not self._unsent:
                await self._queued.park()
            burst = [self._unsent.popleft() for _ in range(min(len(self._unsent), MAX_BURST))]
            self._burst += 1
            self._sending = len(burst)
            appended = await self._append(burst)
            self._sending = 0
            self.published += len(appended)
            if appended:
                self._appended_through = appended[-1].seq
            self._moved.unpark_all()

    # The retry warnings log the error's message, not the error: a log record
    # holding an exception holds its traceback's frames (a dropped connection's
    # buffers among them) for as long as the record is kept.

    async def _append(self, burst: list[EventData]) -> list[Event]:
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                appended = await self._log.append_events(
                    burst, retain=self._retain, publisher=self._publisher, burst=self._burst
                )
            except LocalProtocolError as exc:
                log.error("events JSON cannot carry are not published: %s", exc)
                burst = [data for data in burst if _encodable(data)]
                continue
            except StoreUnavailable as exc:
                if delay == FIRST_RETRY_SECONDS:  # once per outage, not per retry
                    log.warning(
                        "cannot publish events, retrying while the store is away: %s", str(exc)
                    )
                await trio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
                continue
            if delay != FIRST_RETRY_SECONDS:
                log.warning("publishing events again")
            return appended

    async def _follow(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                await self._read(wait_seconds=_TAIL_WAIT_SECONDS)
            except StoreUnavailable as exc:
                if delay == FIRST_RETRY_SECONDS:  # once per outage, not per retry
                    log.warning(
                        "cannot read events, retrying while the store is away: %s", str(exc)
                    )
                await trio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
            else:
                if delay != FIRST_RETRY_SECONDS:
                    log.warning("reading events again")
                delay = FIRST_RETRY_SECONDS

    async def _read(self, *, wait_seconds: float) -> list[Event]:
        events = await self._log.read_events(
            self.last_seq, limit=_READ_LIMIT, wait_seconds=wait_seconds
        )
        for event in events:
            if event.seq <= self.last_seq:
                continue
            if self.last_seq and event.seq > self.last_seq + 1:
                log.warning("events %d..%d left the log unread", self.last_seq + 1, event.seq - 1)
            self.last_seq = event.seq
            self._deliver(event)
        self._moved.unpark_all()
        return events


def _encodable(data: EventData) -> bool:
    try:
        stored_frame(data)
    except LocalProtocolError:
        return False
    return True
