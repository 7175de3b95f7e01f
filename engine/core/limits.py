"""Exact limits: a strict sliding-window rate limiter of cost, a job type's
cluster-wide gate, and the pause.

Design notes
------------
"N per T seconds" is kept *strictly*: the limiter remembers the time and
cost of each start still in the window, and lets a start of cost c happen
only when the cost started in the last T seconds plus c stays within N. So
no half-open window ``[t, t + T)`` ever holds more than N of cost, whatever
the pattern of arrivals; with every cost 1 (the default) it counts starts,
and at saturation every window holds exactly N. A fixed-window or
token-bucket limiter would let up to 2N fall within one window across a
boundary; this one cannot. Memory is O(starts in a window).

Time is read only through ``trio.current_time()``, so tests drive the
limiter with ``trio.testing.MockClock``.

A job type with limits of its own (``[types.NAME]`` concurrency and rate)
has a ``TypeGate``, and its limits hold across the whole cluster: the
gate keeps them in the store (``Store.take_slot``, ``Store.take_rate``),
which every engine on it shares, strictly. A rate that is full says when it
has room, and the gate sleeps until then. A slot that is taken is waited
for with a short backoff (``SLOT_POLL_SECONDS`` at most), or less: a slot
freed by this engine wakes its waiters at once. Each of these polls is a
store step of the run that waits (``StoreRetry.call`` with its
``Patience``): while the store is away the wait goes on until it is back,
and a run being stopped gives up at its deadline. Both are safe to repeat:
a slot taken by a call whose reply was lost is its holder's already, and
the retry keeps it; a lost take of the rate is taken again, which only
makes the window fuller than it need be. Slots are leased: the
engine renews the leases of the slots it holds with its job leases
(``TypeGate.renew``), so an engine that died frees its slots one lease
after it stopped renewing them.

A batch's limiter and its job types' gates are passed one after the other,
not together, each as a job is handed to the child: so a job waiting at its
type's gate has taken a start of its batch's rate; that can only slow the
batch, never let a window of either limit hold more than its count.

A start counts from its handler's real start, not from the hand-off: the
child reports it (``JobStarted``) a pipe hop later, or later still when the
job queued there, and the recorder moves the job's takes by the difference
on the engine's wall clock (``RateLimiter.delay``, ``TypeGate.delay_rate``;
only ever later; a type's hand-off is read just before the store call, so
a moved take never lands before the start). Later takes are weighed
against real starts, so no window of handler starts holds more than N,
provided each report arrives within about T of its hand-off (a take that
left the window is no longer moved).

The pause is a limit too: a run dispatches only while its ``PauseGate``
(``engine.core.pause``) is open.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial

import attrs
import trio

from engine.config.parsers import RateLimit
from engine.core.retry import Patience, StoreRetry
from engine.errors import StoreError
from engine.store.base import Store

__all__ = [
    "SLOT_POLL_SECONDS",
    "RateLimiter",
    "RateLimiterStatistics",
    "TypeGate",
]

log = logging.getLogger("batchyard.limits")

#: The longest a job waiting for a slot of its type waits before it asks the
#: store again: how late, at most, it sees a slot that another engine freed.
SLOT_POLL_SECONDS = 0.25
_FIRST_SLOT_POLL_SECONDS = 0.01


@attrs.frozen(kw_only=True)
class RateLimiterStatistics:
    """A snapshot: the limit, the cost started in the current window, and when
    the next start of cost 1 is allowed (``trio.current_time()`` units; now
    when there is room)."""

    count: int
    per_seconds: float
    cost_in_window: float
    next_start_at: float


class RateLimiter:
    """At most ``count`` of cost started in any window of ``per_seconds`` seconds.

    Args:
        count: cost allowed per window, at least 1.
        per_seconds: the window length, greater than 0.

    Raises:
        ValueError: either argument is out of range.
    """

    def __init__(self, count: int, per_seconds: float) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count!r}")
        if not (per_seconds > 0 and math.isfinite(per_seconds)):
            raise ValueError(f"per_seconds must be positive and finite, got {per_seconds!r}")
        self._count = count
        self._per_seconds = per_seconds
        # (time, cost, holder), oldest first
        self._starts: deque[tuple[float, float, str | None]] = deque()

    @property
    def count(self) -> int:
        """The cost allowed per window."""
        return self._count

    def _in_window(self) -> deque[tuple[float, float, str | None]]:
        # A start at ``at`` leaves the window at ``at + per_seconds``, computed
        # exactly as ``next_start_at`` computes it: ``now - per_seconds``
        # rounds differently, and a start could then share a window with one
        # that waited for it to leave.
        now = trio.current_time()
        while self._starts and self._starts[0][0] + self._per_seconds <= now:
            self._starts.popleft()
        return self._starts

    def _check(self, cost: float) -> None:
        if not (0 < cost <= self._count and math.isfinite(cost)):
            raise ValueError(f"cost must be within (0, {self._count}], got {cost!r}")

    def next_start_at(self, cost: float = 1.0) -> float:
        """When a start of ``cost`` is allowed: now when there is room, else the
        moment enough of the oldest starts have left the window.

        Raises:
            ValueError: ``cost`` is not within (0, count].
        """
        self._check(cost)
        now = trio.current_time()
        held = sum(taken for _, taken, _ in self._in_window())
        for at, taken, _ in self._starts:
            if held + cost <= self._count:
                break
            held -= taken
            now = at + self._per_seconds
        return now

    def available(self) -> float:
        """How much cost the window admits right now."""
        return self._count - sum(taken for _, taken, _ in self._in_window())

    def acquire_nowait(self, cost: float = 1.0, holder: str | None = None) -> None:
        """Take a start of ``cost`` now, in ``holder``'s name (see ``delay``).

        Raises:
            trio.WouldBlock: the window has no room for it.
            ValueError: ``cost`` is not within (0, count].
        """
        if self.next_start_at(cost) > trio.current_time():
            raise trio.WouldBlock
        self._starts.append((trio.current_time(), cost, holder))

    async def acquire(self, cost: float = 1.0, holder: str | None = None) -> float:
        """Take a start of ``cost``, waiting until the window has room, in
        ``holder``'s name (a job id: ``delay`` moves it later).

        Cancellation: atomic; if cancelled, no start was taken.

        Returns:
            When the start was taken (``trio.current_time()``).

        Raises:
            ValueError: ``cost`` is not within (0, count].
        """
        while True:
            # Another waiter may have taken the room this one slept until.
            ready_at = self.next_start_at(cost)
            if ready_at <= trio.current_time():
                await trio.lowlevel.checkpoint_if_cancelled()
                taken_at = trio.current_time()
                self._starts.append((taken_at, cost, holder))
                await trio.lowlevel.cancel_shielded_checkpoint()
                return taken_at
            await trio.sleep_until(ready_at)

    def delay(self, holder: str, seconds: float) -> None:
        """Move ``holder``'s latest start ``seconds`` later (its job started
        then); one that left the window, or a delay not positive: nothing."""
        if not (seconds > 0 and math.isfinite(seconds)):
            return
        for index in range(len(self._starts) - 1, -1, -1):
            at, cost, name = self._starts[index]
            if name == holder:
                del self._starts[index]
                bisect.insort(self._starts, (at + seconds, cost, holder), key=lambda s: s[0])
                return

    def statistics(self) -> RateLimiterStatistics:
        """A snapshot of the limiter."""
        return RateLimiterStatistics(
            count=self._count,
            per_seconds=self._per_seconds,
            cost_in_window=self._count - self.available(),
            next_start_at=self.next_start_at(),
        )


class TypeGate:
    """The limits of one job type, shared by every batch of every engine on
    ``store``: at most ``concurrency`` of its jobs handed out at once, and a
    ``rate`` of cost (None: no such limit). See the module notes.

    Args:
        store: where the limits are kept.
        type_name: the job type (the name of its window and slots).
        concurrency: the most jobs handed out at once, or None.
        rate: the type's rate of cost, or None (or unlimited).
        lease_seconds: how long a slot lasts unless renewed.
    """

    def __init__(
        self,
        store: Store,
        type_name: str,
        *,
        concurrency: int | None = None,
        rate: RateLimit | None = None,
        lease_seconds: float,
    ) -> None:
        self.type_name = type_name
        self.concurrency = concurrency
        self.rate = None if rate is None or rate.unlimited else rate
        self._store = store
        self._lease_seconds = lease_seconds
        self._holders: set[str] = set()
        self._freed = trio.Event()

    async def take_slot(
        self,
        holder: str,
        before_waiting: Callable[[], Awaitable[None]],
        *,
        retry: StoreRetry,
        patience: Patience,
    ) -> bool:
        """Take a slot of the type for ``holder`` (a job id), waiting while
        every slot is held; ``before_waiting`` is awaited once, before the
        first wait. Each poll of the store goes through ``retry`` with the
        run's ``patience``: an outage is waited out.

        Cancellation: atomic: if cancelled, no slot was taken.

        Returns:
            True once ``holder`` holds a slot, which ``release`` gives back;
            False at once when the type has no concurrency limit.

        Raises:
            StoreUnavailable: the store was away and ``patience`` ran out
                (or was abandoned).
            StoreError: the store refused the call.
        """
        if self.concurrency is None:
            return False
        poll, waited = _FIRST_SLOT_POLL_SECONDS, False
        take = partial(
            self._store.take_slot, self.type_name, holder, self.concurrency, self._lease_seconds
        )
        while True:
            freed = self._freed
            taken = await retry.call(take, patience=patience)
            if taken:
                self._holders.add(holder)
                return True
            if not waited:
                await before_waiting()
                waited = True
            with trio.move_on_after(poll):
                await freed.wait()
            poll = min(poll * 2, SLOT_POLL_SECONDS)

    async def take_rate(
        self,
        holder: str,
        cost: float,
        before_waiting: Callable[[], Awaitable[None]],
        clock: Callable[[], float],
        *,
        retry: StoreRetry,
        patience: Patience,
    ) -> float | None:
        """Take ``cost`` from the type's window in ``holder``'s name (a job
        id: ``delay_rate`` moves it later), sleeping until it has room;
        ``before_waiting`` is awaited once, before the first wait. Each
        poll of the store goes through ``retry`` with the run's
        ``patience``: an outage is waited out.

        A cost above the rate's count (a job stored before the limit was
        lowered) takes a whole window instead of waiting forever.

        Cancellation: atomic: if cancelled, nothing was taken.

        Returns:
            ``clock()`` read just before the store call that took it (the
            attempt that succeeded, after an outage); None at once when the
            type has no rate.

        Raises:
            StoreUnavailable: the store was away and ``patience`` ran out
                (or was abandoned).
            StoreError: the store refused the call.
        """
        rate = self.rate
        if rate is None:
            return None
        cost, waited = min(cost, rate.count), False
        asked_at = 0.0

        async def take() -> float:
            nonlocal asked_at
            asked_at = clock()
            return await self._store.take_rate(
                self.type_name, rate.count, rate.per_seconds, cost, holder=holder
            )

        while True:
            wait = await retry.call(take, patience=patience)
            if wait <= 0:
                return asked_at
            if not waited:
                await before_waiting()
                waited = True
            await trio.sleep(wait)

    async def hold(self, seconds: float) -> None:
        """Hold the type's rate window full for ``seconds`` across the
        cluster (its API said "too many requests"); nothing without a rate.

        Cancellation: atomic (one store call).

        Raises:
            StoreError: the store did not answer.
        """
        if self.rate is not None:
            await self._store.hold_rate(
                self.type_name, self.rate.count, self.rate.per_seconds, seconds
            )

    async def release(
        self,
        holders: Sequence[str],
        *,
        retry: StoreRetry | None = None,
        patience: Patience | None = None,
    ) -> None:
        """Give back the slots of ``holders`` and wake this engine's waiters.
        With ``retry``, a store that is away is waited for (with the run's
        ``patience``, within the caller's bound), else one attempt is made.
        A store that does not answer is logged: those slots come back when
        their lease runs out, since they are no longer renewed.

        Cancellation: if cancelled (between attempts, or during the one
        store call), the slots come back when their lease runs out.
        """
        mine = [holder for holder in holders if holder in self._holders]
        self._holders.difference_update(mine)
        if not mine:
            return
        free = partial(self._store.release_slots, self.type_name, mine)
        try:
            await (free() if retry is None else retry.call(free, patience=patience))
        except StoreError as exc:
            log.error("cannot free %d slots of type %r: %s", len(mine), self.type_name, exc)
        finally:
            self._freed.set()
            self._freed = trio.Event()

    async def delay_rate(self, delays: Mapping[str, float]) -> None:
        """Move the takes of the holders in ``delays`` later by their delays
        in seconds (their jobs started then). Cancellation: atomic (one store
        call). A store that does not answer is logged: those takes count
        from their hand-off."""
        if self.rate is None or not delays:
            return
        try:
            await self._store.delay_rate(self.type_name, delays)
        except StoreError as exc:
            log.error("cannot move %d starts of type %r: %s", len(delays), self.type_name, exc)

    def forget_all(self) -> None:
        """Renew none of the slots this engine holds any more (none of its
        jobs runs here: the engine was fenced). They are not freed in the
        store: a slot's holder is its job, which another engine may run
        by now under the same slot; one that nobody renews comes back when
        its lease runs out."""
        self._holders.clear()

    async def renew(self) -> None:
        """Renew the leases of the slots this engine holds.

        Cancellation: atomic (one store call).

        Raises:
            StoreError: the store did not answer.
        """
        if not self._holders:
            return
        holders = list(self._holders)
        renewed = await self._store.renew_slots(self.type_name, holders, self._lease_seconds)
        if renewed < len(holders):
            log.warning(
                "%d slots of type %r had expired before renewal",
                len(holders) - renewed,
                self.type_name,
            )
