"""The event bus: sequence numbers, a replay ring, and fan-out that never
blocks the publisher.

Design notes
------------
``publish`` is a plain (non-async) call. On its own (the SQLite store) the
bus stamps the event with the next ``seq`` of this engine, keeps it in a
ring for replay bounded in count and in bytes (``engine.core.ring``), and
offers it to each matching subscriber (``engine.core.subscription``). Joined to a
store's event log (``serve_log``, the Redis store) the log gives out the
seqs, cluster-wide: ``publish`` queues the event for the log, and every
event of the log, from any engine, comes back through the same ring and
fan-out in seq order (``engine.core.bus_log``).

The bus files its subscriptions by the batch ids of their filters (and
keeps the unfiltered ones apart), so an event is offered only to the
subscriptions that want it: the cost of a publication grows with the
subscribers of its batch, not with every subscriber of the engine.

A subscriber whose buffer is full cannot keep up; it is dropped on the spot
(its queue ends, and its ``dropped_reason`` says why) instead of
slowing the engine or the other subscribers. It may come back with
``resume_from`` = the last seq it saw and gets every retained event after it.

A subscription's buffer is the configured size *plus* the replay it starts
with, so resuming never drops a subscriber before it had a chance to read.
It never gets an event at or below the seq it resumed from: on a cluster a
client may resume on an engine whose ring has not yet caught up with the
engine it came from.

An *observer* (``observe``) sees every event right after the subscribers
were offered it (in the publisher's own call, or the log follower's): it is
how a measurement learns the moment of publication without wrapping
``publish``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING

import attrs
import trio

from engine.core.bus_log import LogLink
from engine.core.ring import DEFAULT_RING_BYTES, ReplayRing
from engine.core.subscription import BUS_CLOSED, SLOW_SUBSCRIBER, Subscription
from protocols.events import EVENT_TYPES, Event, EventData, stamp

if TYPE_CHECKING:
    from engine.store.event_log import EventLog

__all__ = ["BUS_CLOSED", "SLOW_SUBSCRIBER", "BusStatistics", "EventBus", "Subscription"]

_DATA_CLASSES = frozenset(EVENT_TYPES.values())


@attrs.frozen(kw_only=True)
class BusStatistics:
    """A snapshot of the bus. ``unsent`` and ``lost`` count events published
    here that wait for the event log, and those that waited too long (always
    0 without a log)."""

    last_seq: int
    retained: int
    subscribers: int
    published: int
    dropped: int
    unsent: int = 0
    lost: int = 0


class EventBus:
    """Publishes events to subscribers without ever blocking.

    Args:
        ring_size: how many recent events are kept for replay.
        ring_bytes: how much memory they may take (``engine.core.ring``).
        buffer: how many unread events a subscriber may lag behind before it
            is dropped.
        unsent_limit: with an event log, how many published events may wait
            for it (while the store cannot be reached) before the oldest is
            lost.
    """

    def __init__(
        self,
        *,
        ring_size: int = 10_000,
        ring_bytes: int = DEFAULT_RING_BYTES,
        buffer: int = 1_000,
        unsent_limit: int = 50_000,
    ) -> None:
        self._ring = ReplayRing(ring_size, ring_bytes)
        self._ring_size = ring_size
        self._buffer = buffer
        self._unsent_limit = unsent_limit
        self._link: LogLink | None = None
        self._subscribers: dict[Subscription, None] = {}
        self._unfiltered: list[Subscription] = []
        self._by_batch: dict[str, list[Subscription]] = {}
        self._seq = 0
        self._dropped = 0
        self._closed = False
        self._observers: list[Callable[[Event], None]] = []

    def publish(self, data: EventData) -> Event | None:
        """Stamp, retain and fan out one event, or, joined to an event log,
        queue it for the log; never blocks, never raises for a subscriber's
        sake.

        Returns:
            The event as published, with its ``seq``; None with an event log,
            which gives the seq when it appends the event.

        Raises:
            TypeError: ``data`` is not event data.
        """
        if self._link is None:
            event = stamp(self._seq + 1, data)
            self._deliver(event)
            return event
        if type(data) not in _DATA_CLASSES:
            raise TypeError(f"data must be event data, not {type(data).__name__}")
        self._link.queue(data)
        return None

    def _deliver(self, event: Event) -> None:
        self._seq = event.seq
        self._ring.append(event)
        overflowed: list[Subscription] = []
        for subscriber in self._unfiltered:
            if not subscriber._offer(event):
                overflowed.append(subscriber)
        group = self._by_batch.get(event.data.batch_id)
        if group is not None:
            for subscriber in group:
                if not subscriber._offer(event):
                    overflowed.append(subscriber)
        for subscriber in overflowed:
            self._drop(subscriber, SLOW_SUBSCRIBER)
        for observer in self._observers:
            observer(event)

    async def serve_log(
        self, log: EventLog, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Join the bus to ``log`` and serve it until cancelled: from now on
        the log gives out seqs, and the bus fans out every event of the log.

        Started (``nursery.start``) once the ring holds what the log retains;
        the nursery owns the publisher and the follower (``LogLink``).

        Cancellation: the usual way to end it; events published afterwards
        are queued and never sent.

        Args:
            log: the store's event log.

        Raises:
            StoreUnavailable: the log could not be read before starting.
        """
        link = LogLink(
            log, deliver=self._deliver, ring_size=self._ring_size, unsent_limit=self._unsent_limit
        )
        await link.catch_up()
        self._link = link
        task_status.started()
        await link.run()

    async def flush(self) -> None:
        """Return once every event published so far went through the event
        log and was fanned out (at once without a log). Bound the wait: the
        store may be unreachable.

        Cancellation: atomic; it only waits.
        """
        if self._link is not None:
            await self._link.flush()

    def observe(self, observer: Callable[[Event], None]) -> None:
        """Call ``observer`` with every event published from now on, in the
        publisher's call, right after the subscribers were offered it; it must
        be quick and must not raise."""
        self._observers.append(observer)

    def subscribe(
        self,
        batch_ids: Collection[str] | None = None,
        *,
        resume_from: int | None = None,
    ) -> Subscription:
        """A new subscription, filtered to ``batch_ids`` (None: every batch).

        With ``resume_from``, every retained event with a greater seq that
        passes the filter is queued first; ``replay_complete`` is False when
        the ring no longer holds all of them.
        """
        replay = list(self._replay(batch_ids, resume_from))
        first = self._ring.first
        gap = resume_from is not None and first is not None and first.seq > resume_from + 1
        subscription = Subscription(
            self,
            batch_ids,
            self._buffer + len(replay),
            replay_complete=not gap,
            after=resume_from or 0,
        )
        for event in replay:
            subscription._offer(event)
        if self._closed:
            subscription._end(BUS_CLOSED)
        else:
            self._subscribers[subscription] = None
            self._index(subscription)
        return subscription

    def _replay(
        self, batch_ids: Collection[str] | None, resume_from: int | None
    ) -> Iterator[Event]:
        if resume_from is None:
            return
        wanted = None if batch_ids is None else set(batch_ids)
        for event in self._ring:
            if event.seq > resume_from and (wanted is None or event.data.batch_id in wanted):
                yield event

    def _drop(self, subscriber: Subscription, reason: str) -> None:
        self._dropped += 1
        self._remove(subscriber)
        subscriber._end(reason)

    def _remove(self, subscriber: Subscription) -> None:
        if self._subscribers.pop(subscriber, False) is None:
            self._unindex(subscriber)

    def _index(self, subscriber: Subscription) -> None:
        if subscriber.batch_ids is None:
            subscriber._indexed = None
            self._unfiltered.append(subscriber)
            return
        subscriber._indexed = frozenset(subscriber.batch_ids)
        for batch_id in subscriber._indexed:
            self._by_batch.setdefault(batch_id, []).append(subscriber)

    def _unindex(self, subscriber: Subscription) -> None:
        if subscriber._indexed is None:
            self._unfiltered.remove(subscriber)
            return
        for batch_id in subscriber._indexed:
            group = self._by_batch[batch_id]
            group.remove(subscriber)
            if not group:
                del self._by_batch[batch_id]

    def _reindex(self, subscriber: Subscription) -> None:
        """File ``subscriber`` under its filter as it is now."""
        if subscriber in self._subscribers:
            self._unindex(subscriber)
            self._index(subscriber)

    def close(self) -> None:
        """End every subscription (after it drains what it holds). Idempotent."""
        self._closed = True
        for subscriber in list(self._subscribers):
            self._remove(subscriber)
            subscriber._end(BUS_CLOSED)

    @property
    def last_seq(self) -> int:
        """The seq of the newest event, 0 before the first."""
        return self._seq

    def statistics(self) -> BusStatistics:
        """A snapshot of the bus."""
        link = self._link
        return BusStatistics(
            last_seq=self._seq,
            retained=len(self._ring),
            subscribers=len(self._subscribers),
            published=self._seq if link is None else link.published,
            dropped=self._dropped,
            unsent=0 if link is None else link.unsent,
            lost=0 if link is None else link.lost,
        )
