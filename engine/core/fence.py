"""Self-fencing: an engine that cannot renew its leases stops its runs
before other engines may take them over.

Design notes
------------
An engine's leases (its jobs', its run records', its type slots') last
``LEASE_SECONDS`` from their last renewal, and ``keep_leases`` renews them
every third of that. Cut off from the store, an engine cannot know whether
another engine has taken its work over, and it cannot tell the store it
stopped. What it does know is when its last renewal was *sent*: the store
stamped the new expiry with its clock at or after that moment, so no
lease of this engine can lapse, as the store's clock tells it, before
``sent + LEASE_SECONDS`` (a claim or a run start since then only gave
later expiries). ``Fence`` keeps that moment and, once
``sent + LEASE_SECONDS - margin`` passes without a newer renewal, calls
``on_fence``: the engine's runs stop at once and their children are
SIGKILLed, before anyone else may start their jobs.

*The margin* is ``LEASE_SECONDS / 6`` (5 s of the default 30 s lease, 0.5
s of a 3 s one). It has to cover what lies between the fencing moment and
another engine acting on the expiry: this engine's event loop being late
to wake the fence (a busy loop, a paused process), the SIGKILL reaching
the children, and the difference between this host's clock and the
store's (on Redis the store's clock is the one of the engine that writes,
so between hosts it is their clock skew). Other engines act later still:
a lapsed run is resumed within a second of its expiry, lapsed jobs are
recovered at their next renewal round. The margin stays below a renewal
period (``LEASE_SECONDS / 3``): one or two renewals may fail (Redis
restarting for a few seconds) without fencing, since fencing comes only
``LEASE_SECONDS * 5/6`` after the last renewal was sent; while renewals
fail, ``keep_leases`` tries again sooner than every period, so an outage
that ends before the fencing deadline fences nothing.

Time is trio's (monotonic), so a wall-clock step on this host does not
move the deadline, and a ``MockClock`` drives it in tests.

*Lifting.* A fenced engine starts no run. When a renewal round reaches
the store again, the round first takes back in the store whatever is still
recorded as this engine's (``take_back``, once the runs stopped here have
ended: ``Store.recover_engine``, its active jobs back to pending, the
attempt refunded, its run records handed over), since no run here holds
any of it and a renewal would otherwise keep those leases alive for
nothing; once the round has renewed, ``renewed`` lets runs start again.
The runs come back to this engine, or any other, through the usual paths
(takeover of handed-over runs, auto-start, ``process``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

__all__ = ["MARGIN_FRACTION", "Fence"]

log = logging.getLogger("batchyard.engine")

#: The fencing margin as a share of the lease (see the module notes).
MARGIN_FRACTION = 1 / 6


class Fence:
    """When this engine's leases may lapse, and stopping its runs before.

    Args:
        lease_seconds: the leases' time to live.
        on_fence: stops every run now and refuses new ones (quick, never
            raising).
        on_lift: lets runs start again (quick, never raising).
        take_back: once the store answers again, waits for the stopped
            runs to end and puts back in the store whatever is still
            recorded as this engine's; how many jobs (raises ``StoreError``
            when the store did not answer).
    """

    def __init__(
        self,
        lease_seconds: float,
        *,
        on_fence: Callable[[], None],
        on_lift: Callable[[], None],
        take_back: Callable[[], Awaitable[object]],
    ) -> None:
        self.lease_seconds = lease_seconds
        self.margin = lease_seconds * MARGIN_FRACTION
        self._on_fence = on_fence
        self._on_lift = on_lift
        self._take_back = take_back
        self._renewal_sent_at = trio.current_time()
        self._moved = trio.Event()
        self.fenced = False
        self._taken_back = False  # since the fence, by the store

    @property
    def deadline(self) -> float:
        """The trio time at which the runs are stopped unless a renewal
        sent later succeeds first."""
        return self._renewal_sent_at + self.lease_seconds - self.margin

    def renewed(self, sent_at: float) -> None:
        """A renewal sent at ``sent_at`` (trio time, taken before the call)
        succeeded: the deadline moves past it, and a fenced engine whose
        store took its holdings back (``take_back``, earlier in the same
        round) may run again; a renewal that was on its way since before the
        fence lifts nothing. One that succeeds only after the deadline has
        passed fences first (the process was frozen, say: other engines may
        have taken over meanwhile). Never blocks."""
        if not self.fenced and trio.current_time() >= self.deadline:
            self._fence()  # the watch has not had its turn yet (a frozen loop)
        if sent_at > self._renewal_sent_at:
            self._renewal_sent_at = sent_at
            self._moved.set()
            self._moved = trio.Event()
        if self.fenced and self._taken_back and trio.current_time() < self.deadline:
            self.fenced = self._taken_back = False
            log.warning("leases renewed: runs may start here again")
            self._on_lift()

    async def watch(self) -> None:
        """Fence the engine whenever its deadline passes. Runs until cancelled.

        Cancellation: the way it ends.
        """
        while True:
            if not self.fenced and trio.current_time() >= self.deadline:
                self._fence()
            moved = self._moved
            if self.fenced:
                await moved.wait()
            else:
                with trio.move_on_at(self.deadline):
                    await moved.wait()

    def _fence(self) -> None:
        self.fenced, self._taken_back = True, False
        log.error(
            "no lease renewal reached the store for %.1f s (lease %.1f s):"
            " stopping every run here before another engine may take it over",
            trio.current_time() - self._renewal_sent_at,
            self.lease_seconds,
        )
        self._on_fence()

    async def take_back(self) -> None:
        """If fenced: put back in the store what it still records as this
        engine's. Call it in a renewal round once the store answered its
        first step, before renewing (``renewed`` then lifts the fence).
        It waits for the runs stopped here to end first, so none of them
        still takes anything afterwards.

        Cancellation: may have partially happened (taken back, not marked:
        the next round takes back again, which is harmless).

        Raises:
            StoreError: the store did not answer (still fenced).
        """
        if not self.fenced:
            return
        jobs = await self._take_back()
        self._taken_back = True
        log.warning("the store answers again: %s jobs this engine held back to pending", jobs)
