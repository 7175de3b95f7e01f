"""A job type's cluster-wide gate: its limits of its own (``[types.NAME]``
concurrency and rate), kept in the store.

Design notes
------------
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

See ``engine.core.limits`` for how a type's rate counts from its jobs'
real starts, and how it stands beside its batch's rate.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial

import trio

from engine.config.parsers import RateLimit
from engine.core.retry import Patience, StoreRetry
from engine.errors import StoreError
from engine.store.base import Store

__all__ = ["SLOT_POLL_SECONDS", "TypeGate"]

log = logging.getLogger("batchyard.limits")

#: The longest a job waiting for a slot of its type waits before it asks the
#: store again: how late, at most, it sees a slot that another engine freed.
SLOT_POLL_SECONDS = 0.25
_FIRST_SLOT_POLL_SECONDS = 0.01


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
