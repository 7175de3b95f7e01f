"""Keeping the store's work owned: job leases renewed, expired ones
recovered, interrupted runs resumed.

Design notes
------------
A claimed job carries a lease of ``LEASE_SECONDS`` in its owner's name, and
so does the slot its type's gate took for it (see ``engine.core.type_gate``).
While the engine lives, ``keep_leases`` registers the engine (its
heartbeat) and renews every lease it holds each third of that, so a
renewal or two may fail (the store hiccupped) before a lease runs out. The
heartbeat comes first: an engine's record then never outlives its leases,
so whoever sees the record expired may take it for dead. The same loop
recovers the leases that did run out (their engine died): those jobs are
pending again, so every run is woken to claim them. An engine also
recovers expired leases once as it opens.

While the store is away, renewal keeps trying, sooner than every round
(the engine's ``StoreRetry`` backoff, at most a period; the retry logs the
outage once, not each attempt). A lease is only as long as
``LEASE_SECONDS`` though: an outage longer than that lets the engine's
leases run out in the store, and then another engine of the cluster (or
this one, once the store is back) may recover its jobs and resume its runs,
as the contract says of an engine cut off from the store. So that no job
runs on both sides, the engine fences itself first (``engine.core.fence``):
with no renewal through for ``LEASE_SECONDS * 5/6``, its runs stop and
their children are killed, and once the store answers again it takes back
what the store still records as its own before it renews anything. What a
run still writes meanwhile is skipped by the store when it is for a job no
longer active under this engine's lease (so it never overwrites the engine
that claimed the job since).

A run stopped early is handed over in the store (its run record kept with
no owner), or left behind by an engine that died (its lease runs out).
``RememberedRuns.resume`` starts, in batch-id order within capacity, the
remembered runs that are free (handed over, or their lease expired) or
already this engine's (a run whose failure could not be handed over); the
cluster (``engine.core.cluster``) calls it whenever capacity may be free. A
run that cannot start at all is logged and skipped; its record does not
outlive that (a deleted batch takes its record with it, and a run whose
first child cannot start forgets its own), so it is not retried forever.
A store error is the caller's (the cluster's loop tries again in its next
round). Nothing is resumed once the engine is shutting down:
such a start would be refused, and the run must stay remembered for
another engine.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from engine.core.fence import Fence
from engine.core.retry import StoreRetry
from engine.core.values import StartResult
from engine.errors import EngineError, StoreError, StoreUnavailable
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
    *,
    heartbeat: Callable[[], Awaitable[object]],
    renew_slots: Callable[[], Awaitable[None]],
    retry: StoreRetry,
    fence: Fence | None = None,
) -> None:
    """Every ``lease_seconds / 3``: ``heartbeat``, renew ``owner``'s leases
    and (with ``renew_slots``) its type slots, recover the expired leases
    and, when some were, call ``wake_runs``. Runs until cancelled; a store
    that is away is told to ``retry`` (which logs the outage once), any other
    store error is logged, and the next round tries again (after an
    outage sooner: the ``retry``'s backoff, at most a period). With a
    ``fence``, each renewal that succeeded is told to it (with the time it
    was sent), and a fenced engine takes back what the store holds in its
    name (``Fence.take_back``) before its leases are renewed.

    Cancellation: the way it ends; a renewal cut short leaves the leases as
    they were (each store call is one transaction).
    """
    interval = lease_seconds / 3
    pause, delays = interval, retry.backoff.delays()
    while True:
        await trio.sleep(pause)
        # After a failed round the next one comes sooner (the store's
        # backoff, at most a period): an outage that ends before the fence's
        # deadline must not fence the runs.
        pause = min(next(delays), interval)
        sent_at = trio.current_time()
        try:
            await heartbeat()
            if fence is not None and fence.fenced:
                await fence.take_back()
                sent_at = trio.current_time()  # nothing was held before
            await store.renew_leases(owner, lease_seconds)
            await renew_slots()
            if fence is not None:
                fence.renewed(sent_at)
            recovered = await recover_expired_leases(store)
        except StoreUnavailable as exc:
            retry.failed(exc)
            continue
        except StoreError as exc:
            log.error("cannot renew leases: %s", exc)
            pause = interval  # a refused call is not retried sooner
            continue
        pause, delays = interval, retry.backoff.delays()
        retry.answered()
        if recovered:
            wake_runs()


class RememberedRuns:
    """The runs remembered in the store that no live engine holds, started
    here as capacity allows.

    Args:
        store: where runs are remembered.
        owner: this engine's owner name (its runs are resumed too).
        clock: wall-clock seconds, the store's clock (lease expiry).
        start: starts a batch's run (the runs' ``start``).
        draining: whether the engine is shutting down.
        resting: whether a batch's run is not to be resumed now.
    """

    def __init__(
        self,
        store: Store,
        *,
        owner: str,
        clock: Callable[[], float],
        start: Callable[[str], Awaitable[StartResult]],
        draining: Callable[[], bool],
        resting: Callable[[str], bool] = lambda _: False,
    ) -> None:
        self._store = store
        self._owner = owner
        self._clock = clock
        self._start = start
        self._draining = draining
        self._resting = resting

    async def resume(self) -> int:
        """Read the remembered runs that are free or this engine's, and start
        them in order until capacity is reached or the engine drains.

        Cancellation: may have partially happened (some runs started).

        Returns:
            How many runs started.

        Raises:
            StoreError: the store did not answer.
        """
        runs = await self._store.runs()
        now = self._clock()
        waiting = sorted(
            run.batch_id
            for run in runs
            if (run.owner in (None, self._owner) or run.expires_at <= now)
            and not self._resting(run.batch_id)
        )
        started = 0
        for batch_id in waiting:
            if self._draining():
                break
            try:
                result = await self._start(batch_id)
            except StoreError:
                raise
            except EngineError as exc:  # its batch is gone, no child would start
                log.error("[batch %s] cannot resume: %s", batch_id, exc)
                continue
            if result is StartResult.CAPACITY_REACHED:
                break
            if result is StartResult.STARTED:
                log.info("[batch %s] resumed", batch_id)
                started += 1
        return started
