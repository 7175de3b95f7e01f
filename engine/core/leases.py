"""Keeping the store's work owned: job leases renewed, expired ones
recovered, remembered runs resumed.

Design notes
------------
A claimed job carries a lease of ``LEASE_SECONDS`` in its owner's name, and
so does the slot its type's gate took for it (see ``engine.core.limits``).
While the engine lives, ``keep_leases`` renews every lease it holds each
third of that, so a renewal or two may fail (the store hiccupped) before a
lease runs out. The same loop recovers the leases that did run out (their
engine died): those jobs are pending again, so every run is woken to claim
them. An engine also recovers expired leases once as it opens.

While the store is away, renewal keeps trying every round (telling the
engine's ``StoreRetry``, which logs the outage once, not each round). A
lease is only as long as ``LEASE_SECONDS`` though: an outage longer than
that lets the engine's leases run out in the store, and then another engine
of the cluster (or this one, once the store is back) may recover its jobs
and resume its runs, as the contract says of an engine cut off from the
store. Whatever this engine's runs still hold of those jobs is then
recorded as best it can: an outcome for a job that is no longer active is
skipped by the store, and a job recovered to pending runs again.

A run stopped by shutdown is handed over in the store (its run record kept
with no owner), so the next engine on the same store resumes it.
``RememberedRuns`` starts, in batch-id order within capacity, the
remembered runs that are free (handed over, or their lease expired) or
already this engine's: a run that meets ``CAPACITY_REACHED`` waits at the
head of the queue, and ``resume_next`` is called again whenever a run ends;
so does one that cannot start because the store is away. A run that cannot
start at all is logged and dropped from the queue; its record does not
outlive that (a deleted batch takes its record with it, and a run whose
first child cannot start forgets its own), so it is not retried on every
restart. Nothing is resumed once the engine is shutting down: such a start
would be refused, and the run must stay remembered for the next engine.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from engine.core.retry import StoreRetry
from engine.core.values import StartResult
from engine.errors import StoreError, StoreUnavailable
from engine.store import Store

__all__ = ["RememberedRuns", "keep_leases", "recover_expired_leases"]

log = logging.getLogger("batchyard.engine")


async def recover_expired_leases(store: Store) -> int:
    """Put the jobs whose lease expired back to pending; how many (logged).

    Cancellation: atomic (one store transaction).

    Raises:
        StoreError: the store did not answer.
    """
    recovered = await store.recover_expired_leases()
    if recovered:
        log.warning("recovered %d jobs from expired leases", recovered)
    return recovered


async def keep_leases(
    store: Store,
    owner: str,
    lease_seconds: float,
    wake_runs: Callable[[], None],
    renew_slots: Callable[[], Awaitable[None]],
    retry: StoreRetry,
) -> None:
    """Every ``lease_seconds / 3``: renew ``owner``'s leases and (with
    ``renew_slots``) its type slots, recover the expired leases and, when
    some were, call ``wake_runs``. Runs until cancelled; a store that is away
    is told to ``retry`` (which logs the outage once), any other store error
    is logged, and the next round tries again.

    Cancellation: the way it ends; a renewal cut short leaves the leases as
    they were (each store call is one transaction).
    """
    interval = lease_seconds / 3
    while True:
        await trio.sleep(interval)
        try:
            await store.renew_leases(owner, lease_seconds)
            await renew_slots()
            recovered = await recover_expired_leases(store)
        except StoreUnavailable as exc:
            retry.failed(exc)
            continue
        except StoreError as exc:
            log.error("cannot renew leases: %s", exc)
            continue
        retry.answered()
        if recovered:
            wake_runs()


class RememberedRuns:
    """The runs a previous engine left remembered as running, started again
    here as capacity allows.

    Args:
        store: where runs are remembered.
        owner: this engine's owner name (its runs are resumed too).
        clock: wall-clock seconds, the store's clock (lease expiry).
        start: starts a batch's run (the engine's ``start``).
        draining: whether the engine is shutting down.
    """

    def __init__(
        self,
        store: Store,
        *,
        owner: str,
        clock: Callable[[], float],
        start: Callable[[str], Awaitable[StartResult]],
        draining: Callable[[], bool],
    ) -> None:
        self._store = store
        self._owner = owner
        self._clock = clock
        self._start = start
        self._draining = draining
        self._queue: list[str] = []

    async def resume(self) -> None:
        """Read the remembered runs that are free or this engine's, and start
        as many as capacity allows.

        Cancellation: may have partially happened (some runs started).

        Raises:
            StoreError: the store did not answer.
        """
        runs = await self._store.runs()
        now = self._clock()
        self._queue = sorted(
            run.batch_id
            for run in runs
            if run.owner in (None, self._owner) or run.expires_at <= now
        )
        await self.resume_next()

    async def resume_next(self) -> None:
        """Start the waiting runs in order until capacity is reached, the
        queue is empty or the engine is shutting down.

        Cancellation: may have partially happened (some runs started).
        """
        while self._queue and not self._draining():
            batch_id = self._queue[0]
            try:
                result = await self._start(batch_id)
            except StoreUnavailable as exc:
                log.warning("[batch %s] cannot resume while the store is away: %s", batch_id, exc)
                return
            except Exception as exc:
                log.error("[batch %s] cannot resume: %s", batch_id, exc)
                self._queue.pop(0)
                continue
            if result is StartResult.CAPACITY_REACHED:
                return
            self._queue.pop(0)
            if result is StartResult.STARTED:
                log.info("[batch %s] resumed", batch_id)
