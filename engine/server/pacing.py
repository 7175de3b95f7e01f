"""How often one event client is written to, at most, given how many there are.

Design notes
------------
A write to one client costs the server a fixed amount of CPU whatever it
carries: the socket call, the ASGI server's framing and locking, and three
passes of the event loop's scheduler (measured: 50 to 100 microseconds on
a laptop-class core). With many clients on one batch, each publication
wakes every client's handler, so a busy batch turns into back-to-back
rounds of one small write per client, and the rounds crowd out the engine
that produces the events: the batch slows down, which makes yet more
rounds.

So a client's handler, once it has something to send, waits until
``interval()`` has passed since its previous write, then takes everything
queued by then: about the time one write round over every client takes
(``_WRITE_SECONDS`` per client), and never more than ``_MAX_INTERVAL``,
or until half its buffer is queued, whichever comes first. A client idle
for the interval is written to at once; with a handful of clients the
wait is a fraction of a millisecond; with a thousand it is the round
itself (70 ms), and each write carries the whole round's events.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from engine.core.subscription import SLOW_SUBSCRIBER, Subscription
from protocols.events import Event

__all__ = ["WritePace", "take_paced"]

#: One write's share of a round (see the notes): a little above its
#: measured CPU cost, so that a round over every client fits in the
#: interval when the server has a core to itself. Measured with a thousand
#: subscribers of a 1,000-job batch: at 50 us per client the batch took
#: twice as long (the writes crowded out the engine) for a p99 delivery of
#: 70 ms; at 100 us, p99 120 to 150 ms; at 70 us, about 90 ms with the batch
#: slowed by a third.
_WRITE_SECONDS = 0.00007

#: The longest wait between two writes to one client. A client whose
#: queue reaches half its buffer is written to at once, paced or not, so a
#: client that keeps up is never dropped as slow for the pace's sake.
_MAX_INTERVAL = 0.1


class WritePace:
    """Counts the event clients connected (``client``) and paces each one's
    writes accordingly (``interval``)."""

    def __init__(self) -> None:
        self.clients = 0

    @contextmanager
    def client(self) -> Iterator[None]:
        """Counts one event client while the block runs."""
        self.clients += 1
        try:
            yield
        finally:
            self.clients -= 1

    def interval(self) -> float:
        """The least time, in seconds, between two writes to one client now."""
        return min(_MAX_INTERVAL, self.clients * _WRITE_SECONDS)


async def take_paced(
    subscription: Subscription, pace: WritePace, last_write: float
) -> list[Event]:
    """Everything ``subscription`` holds, once it holds something and
    ``pace`` allows the next write after ``last_write`` (Trio time).

    It waits out the pace first, then for an event if none is queued by
    then: a client under load costs one pass of the scheduler here per
    write, not two. Not a checkpoint when the pace allows a write and
    something is queued already (the write that follows is one).

    Cancellation: atomic; nothing is taken if cancelled.

    Raises:
        trio.EndOfChannel: the subscription ended, or was dropped as slow
            (what it still holds is not sent).
    """
    while True:
        due = last_write + pace.interval()
        if subscription.dropped_reason is None and due > trio.current_time():
            with trio.move_on_at(due):
                await subscription.wait_filling()
        if subscription.dropped_reason == SLOW_SUBSCRIBER:
            raise trio.EndOfChannel
        try:
            return subscription.receive_queued_nowait()
        except trio.WouldBlock:
            await subscription.wait_queued()
