"""One subscriber's queue of bus events (``engine.core.bus``).

Design notes
------------
A subscription's queue is a plain deque of the bus's own event objects,
bounded by its buffer: offering an event (``_offer``, the bus's call, with
the event already filtered) is an append and, when the consumer waits, one
wake-up; a full queue makes the bus drop the subscriber. A consumer that
writes once per burst takes everything queued in one call
(``receive_queued``), so a subscriber costs the bus about one append per
event and the consumer nothing per event; ``receive`` and
``receive_nowait`` take one event at a time.

After a drop or the bus's close the consumer still receives what was
queued, then ``trio.EndOfChannel``; after ``close`` (the consumer's own)
nothing more. One task at a time receives from a subscription.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Collection
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import trio

from protocols.events import Event

if TYPE_CHECKING:
    from engine.core.bus import EventBus

__all__ = ["BUS_CLOSED", "SLOW_SUBSCRIBER", "Subscription"]

_T = TypeVar("_T")

#: Why a subscription ended, as its ``dropped_reason`` says.
SLOW_SUBSCRIBER = "slow-subscriber"
BUS_CLOSED = "shutdown"


class Subscription:
    """One subscriber's view of the bus; iterate it to receive events.

    Iteration ends when the subscription is closed, dropped (see
    ``dropped_reason``) or the bus closes. Use it as a context manager so it
    is removed from the bus however the consumer ends. One task at a time
    receives from it.
    """

    def __init__(
        self,
        bus: EventBus,
        batch_ids: Collection[str] | None,
        buffer: int,
        *,
        replay_complete: bool = True,
        after: int = 0,
    ) -> None:
        self._bus = bus
        self.batch_ids: set[str] | None = None if batch_ids is None else set(batch_ids)
        self._queue: collections.deque[Event] = collections.deque()
        self._buffer = buffer
        self._ready: trio.Event | None = None
        self._filling: trio.Event | None = None  # set at half the buffer
        self._ended = False
        self._closed = False
        self.dropped_reason: str | None = None
        self.replay_complete = replay_complete
        self.last_seq = 0
        self._after = after
        #: The batch ids the bus files it under (None: every batch).
        self._indexed: frozenset[str] | None = None

    def subscribe(self, batch_ids: Collection[str]) -> None:
        """Also receive events of these batches (a no-op when unfiltered)."""
        if self.batch_ids is not None:
            self.batch_ids.update(batch_ids)
            self._bus._reindex(self)

    def unsubscribe(self, batch_ids: Collection[str]) -> None:
        """Stop receiving events of these batches; an unfiltered subscription
        becomes filtered to nothing else than what it is later told."""
        if self.batch_ids is None:
            self.batch_ids = set()
        self.batch_ids.difference_update(batch_ids)
        self._bus._reindex(self)

    def _offer(self, event: Event) -> bool:
        """Queue ``event`` (already filtered); False when the buffer is full."""
        if self._ended or event.seq <= self._after:
            return True
        queue = self._queue
        if len(queue) >= self._buffer:
            return False
        queue.append(event)
        if self._ready is not None:
            self._wake()
        if self._filling is not None and len(queue) >= self._buffer // 2:
            self._filling.set()
        return True

    def _end(self, reason: str) -> None:
        if self.dropped_reason is None:
            self.dropped_reason = reason
        self._ended = True
        self._wake()
        if self._filling is not None:
            self._filling.set()

    def _wake(self) -> None:
        ready = self._ready
        if ready is not None:
            self._ready = None
            ready.set()

    async def wait_queued(self) -> None:
        """Return once an event is queued or the subscription ended (closed,
        dropped, or the bus closed), taking nothing.

        Cancellation: atomic; it only waits.
        """
        if self._queue or self._ended or self._closed:
            await trio.lowlevel.checkpoint()
            return
        if self._ready is None:
            self._ready = trio.Event()
        await self._ready.wait()

    async def wait_filling(self) -> None:
        """Return once half the buffer is queued, or the subscription ended:
        a consumer that holds back its writes (``engine.server.pacing``)
        writes before the bus would drop it as slow.

        Cancellation: atomic; it only waits.
        """
        if len(self._queue) >= self._buffer // 2 or self._ended or self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._filling = filling = trio.Event()
        try:
            await filling.wait()
        finally:
            self._filling = None

    async def receive(self) -> Event:
        """The next event.

        Cancellation: atomic; no event is lost if cancelled.

        Raises:
            trio.EndOfChannel: the subscription ended; see ``dropped_reason``.
        """
        return await self._once_queued(self.receive_nowait)

    async def receive_queued(self) -> list[Event]:
        """Everything queued, oldest first, once at least one event is: how a
        consumer writes once per burst.

        Cancellation: atomic; no event is lost if cancelled.

        Raises:
            trio.EndOfChannel: the subscription ended; see ``dropped_reason``.
        """
        return await self._once_queued(self.receive_queued_nowait)

    async def _once_queued(self, take: Callable[[], _T]) -> _T:
        """``take()`` once something is queued (or the subscription ended)."""
        while True:
            await self.wait_queued()
            try:
                return take()
            except trio.WouldBlock:
                continue

    def receive_queued_nowait(self) -> list[Event]:
        """Everything queued now, oldest first, without waiting.

        Raises:
            trio.WouldBlock: nothing is queued now.
            trio.EndOfChannel: the subscription ended; see ``dropped_reason``.
        """
        self._check_open()
        events = list(self._queue)
        self._queue.clear()
        self.last_seq = events[-1].seq
        return events

    def receive_nowait(self) -> Event:
        """The next event if one is queued, without waiting.

        Raises:
            trio.WouldBlock: nothing is queued now.
            trio.EndOfChannel: the subscription ended; see ``dropped_reason``.
        """
        self._check_open()
        event = self._queue.popleft()
        self.last_seq = event.seq
        return event

    def _check_open(self) -> None:
        if self._closed:
            raise trio.EndOfChannel
        if not self._queue:
            raise trio.EndOfChannel if self._ended else trio.WouldBlock

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Leave the bus, dropping what is queued. Idempotent."""
        self._bus._remove(self)
        self._closed = True
        self._queue.clear()
        self._wake()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
