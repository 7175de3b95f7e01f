"""This engine as one of the cluster: it registers itself, takes over runs
that no live engine holds, takes back what its dead predecessor on this
host held, and starts batches by itself.

Design notes
------------
Every engine on one store is one cluster (SQLite and Redis alike). An
engine is known by its id (``Engine.owner``), host, pid and boot id
(``EngineIdentity``, ``engine.core.identity``); its record lives in the
store for ``LEASE_SECONDS`` past each heartbeat, which ``keep_leases``
sends with every lease renewal.

*Take-back at open.* An engine restarted on the same host need not wait
for its predecessor's leases: a record of this host and boot whose process
no longer lives (``EngineIdentity.outlives``, ``engine.core.identity``) is
a dead engine for sure, so its jobs go back to pending (no attempt used)
and its runs are handed over at once (``recover_engine``), its record is
forgotten, and the runs are resumed right away.

*Takeover and auto-start* are one loop (``_keep_starting``): whenever this
engine has free capacity it resumes the remembered runs no live engine
holds (handed over at a graceful shutdown, or whose lease expired), then
starts the batches ``startable_batches`` offers: every batch with due work
that runs nowhere under ``AUTO_START=1``, else those flagged ``autoStart``
or with ``after``. A start that loses the race to another engine answers
``ALREADY_RUNNING`` and is simply not counted; so does one that finds, once
it holds the run, that the batch has no pending or active job left
(another engine ran it to its end after it was offered, or a run handed
over at a shutdown had nothing left), so no batch runs twice for nothing. The loop looks again soon
after it found work, backs off to ``_IDLE_PAUSE`` when idle, and is woken
at once by local events (a run ended, a batch or jobs were added), so a
single engine reacts at once and a cluster within a second.

*A run that failed here* after it started (the store broke, say) is handed
over like an interrupted one, but this engine leaves it alone for a renewal
period: a failure that repeats does not become a loop, and other work gets
the capacity; any other engine may resume it at once.

*Flows.* A batch with ``after`` starts only once every batch it lists
exists and has no pending or active job. A listed batch that does not
exist holds the flow back (logged once): starting a step before the one
it follows cannot be undone, while a flow waiting for a batch that is
created later, or deleted on purpose, is the operator's to resolve.
Batches held back still come first in ``startable_batches`` (oldest
first), so each round asks for as many more as were held back the last
time; the prerequisites of a candidate are one ``get_batch`` each.

*Heartbeats* go with every lease renewal, and also whenever a run started
or ended here, so the cluster's list of engines names each one's runs
within a look of the change.

*Fencing.* ``open`` arms this engine's ``Fence`` (``engine.core.fence``):
should its renewals not reach the store for most of a lease, its runs
stop (children killed) before their leases can lapse, and no run starts
here until a renewal round gets through again.

*Leaving.* A graceful exit stops the loops and forgets the engine's
record; a dead engine's record is forgotten by whichever engine sees it
expired and holding no run record any more (its runs taken over).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

import trio

from engine.core.fence import Fence
from engine.core.identity import EngineIdentity
from engine.core.leases import RememberedRuns, keep_leases
from engine.core.retry import StoreRetry
from engine.core.runs import Runs
from engine.core.values import StartResult
from engine.errors import BatchNotFound, EngineError, StoreError, StoreUnavailable
from engine.store import BatchRecord, EngineRecord, Store

__all__ = ["Cluster"]

log = logging.getLogger("batchyard.cluster")

#: After a round that started something, the next comes this soon: there
#: may be more to start, and one round is a store read or two.
_BUSY_PAUSE = 0.05
#: The longest an idle engine waits before it looks again: how long a batch
#: flagged ``autoStart`` or handed over by another engine may wait for it.
_IDLE_PAUSE = 1.0


class Cluster:
    """This engine's part in the cluster. ``open`` starts it in the engine's
    nursery; ``leave`` stops it and unregisters the engine.

    Args:
        store: the cluster's store (not owned).
        runs: this engine's runs (started here, counted for capacity).
        identity: who this engine is.
        lease_seconds: the lease and heartbeat time to live.
        auto_start: start any batch with due work, not only those that
            start by themselves.
        clock: wall-clock seconds, the store's clock.
        renew_slots: renews the type slots this engine's jobs hold.
        forget_slots: stops renewing every type slot this engine holds.
        retry: the engine's view of the store, told of each renewal.
    """

    def __init__(
        self,
        *,
        store: Store,
        runs: Runs,
        identity: EngineIdentity,
        lease_seconds: float,
        auto_start: bool,
        clock: Callable[[], float],
        renew_slots: Callable[[], Awaitable[None]],
        forget_slots: Callable[[], None],
        retry: StoreRetry,
    ) -> None:
        self.identity = identity
        self._renew_slots = renew_slots
        self._forget_slots = forget_slots
        self._retry = retry
        self._store = store
        self._runs = runs
        self._lease_seconds = lease_seconds
        self._auto_start = auto_start
        self._clock = clock
        self._remembered = RememberedRuns(
            store,
            owner=identity.engine_id,
            clock=clock,
            start=partial(runs.start, only_with_work=True),
            draining=lambda: runs.draining,
            resting=self._resting,
        )
        self._woken = trio.Event()
        self._news = False  # what runs here changed since the last heartbeat
        self._scope = trio.CancelScope()
        self._stopped: trio.Event | None = None
        self._held_back: set[str] = set()
        self._missing_told: set[tuple[str, str]] = set()

    def wake(self) -> None:
        """Something happened here that may make work startable or changes
        what this engine runs (a run started or ended, a batch or jobs were
        added): look again now, and tell the cluster what runs here."""
        self._woken.set()
        self._news = True

    async def open(self, nursery: trio.Nursery) -> None:
        """Take back what dead predecessors on this host held, register this
        engine, resume the runs free to take, then keep going in ``nursery``.

        Cancellation: may have partially happened (some runs taken back or
        started).

        Raises:
            StoreError: the store did not answer.
        """
        # Armed first: whatever this engine takes from here on is leased later.
        fence = Fence(
            self._lease_seconds,
            on_fence=self._runs.fence,
            on_lift=self._runs.unfence,
            take_back=self._take_back_own,
        )
        await self._take_back_from_dead_predecessors()
        await self._heartbeat()
        await self._remembered.resume()
        self._stopped = trio.Event()
        nursery.start_soon(self._serve, self._stopped, fence)

    async def leave(self) -> None:
        """Stop taking and starting work and unregister this engine (call it
        once the runs have stopped). A store error is logged: the record
        then expires by itself.

        Cancellation: may have partially happened (stopped, not unregistered).
        """
        self._scope.cancel()
        if self._stopped is not None:
            await self._stopped.wait()
        try:
            await self._store.forget_engine(self.identity.engine_id)
        except StoreError as exc:
            log.warning("cannot unregister engine %s: %s", self.identity.engine_id, exc)

    async def live_engines(self) -> list[EngineRecord]:
        """The engines of the cluster whose heartbeat has not expired.

        Cancellation: atomic: it only reads.

        Raises:
            StoreError: the store did not answer.
        """
        now = self._clock()
        return [record for record in await self._store.engines() if record.expires_at > now]

    # --- the background work ------------------------------------------------

    async def _serve(self, stopped: trio.Event, fence: Fence) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(fence.watch)
                    nursery.start_soon(
                        partial(
                            keep_leases,
                            self._store,
                            self.identity.engine_id,
                            self._lease_seconds,
                            self._runs.wake_all,
                            heartbeat=self._heartbeat_and_tidy,
                            renew_slots=self._renew_slots,
                            retry=self._retry,
                            fence=fence,
                        )
                    )
                    await self._keep_starting()
        finally:
            stopped.set()

    async def _heartbeat(self) -> None:
        status = self._runs.status()
        record = EngineRecord(
            engine_id=self.identity.engine_id,
            host=self.identity.host,
            pid=self.identity.pid,
            boot_id=self.identity.boot_id,
            max_batches=status.max_batches,
            running_batches=status.running_batches,
        )
        self._news = False
        await self._store.heartbeat(record, self._lease_seconds)

    async def _heartbeat_and_tidy(self) -> None:
        await self._heartbeat()
        try:
            await self._forget_the_departed()
        except StoreError as exc:  # tidying only: the heartbeat went through
            log.warning("cannot tidy the engine registry: %s", exc)

    async def _forget_the_departed(self) -> None:
        now = self._clock()
        departed = [r.engine_id for r in await self._store.engines() if r.expires_at <= now]
        if not departed:
            return
        holding = {run.owner for run in await self._store.runs()}
        for engine_id in departed:
            if engine_id not in holding:
                await self._store.forget_engine(engine_id)
                log.info("engine %s is gone; its runs were taken over", engine_id)

    async def _take_back_own(self) -> int:
        """Once the fenced runs have ended here, put what the store still
        records as this engine's back (jobs to pending, runs handed over);
        the type slots of those jobs are renewed here no more."""
        await self._runs.wait_all_stopped()
        jobs = await self._store.recover_engine(self.identity.engine_id)
        self._forget_slots()
        return jobs

    async def _take_back_from_dead_predecessors(self) -> None:
        for record in await self._store.engines():
            if not self.identity.outlives(record):
                continue
            jobs = await self._store.recover_engine(record.engine_id)
            await self._store.forget_engine(record.engine_id)
            log.warning(
                "engine %s (pid %d on this host) is gone: took back its runs, "
                "%d jobs back to pending",
                record.engine_id,
                record.pid,
                jobs,
            )

    async def _keep_starting(self) -> None:
        pause = _BUSY_PAUSE
        while True:
            with trio.move_on_after(pause):
                await self._woken.wait()
            self._woken = trio.Event()
            try:
                started = await self._round()
                if self._news:
                    await self._heartbeat()
            except StoreUnavailable as exc:
                self._retry.failed(exc)  # logged once for the whole outage
                started = 0
            except StoreError as exc:
                log.error("cannot look for work: %s", exc)
                started = 0
            pause = _BUSY_PAUSE if started else min(pause * 2, _IDLE_PAUSE)

    async def _round(self) -> int:
        """Resume free runs, then start startable batches; how many started."""
        if self._runs.draining or self._runs.fenced or self._runs.free <= 0:
            return 0
        started = await self._remembered.resume()
        return started + await self._start_startable()

    # --- auto-start ---------------------------------------------------------

    async def _start_startable(self) -> int:
        free = self._runs.free
        if free <= 0:
            return 0
        candidates = await self._store.startable_batches(
            free + len(self._held_back), any_batch=self._auto_start
        )
        held_back: set[str] = set()
        finished: dict[str, bool] = {}
        started = 0
        for batch in candidates:
            if self._runs.draining or self._runs.free <= 0:
                break
            if batch.batch_id in self._runs or self._resting(batch.batch_id):
                continue
            if not await self._prerequisites_done(batch, finished):
                held_back.add(batch.batch_id)
            elif await self._start(batch.batch_id):
                started += 1
        self._held_back = held_back
        return started

    def _resting(self, batch_id: str) -> bool:
        """Whether the batch's run failed here less than a renewal period
        ago: it is left to other engines (or a later look) for that long."""
        failed_at = self._runs.failed_at(batch_id)
        return failed_at is not None and trio.current_time() - failed_at < self._lease_seconds / 3

    async def _prerequisites_done(self, batch: BatchRecord, finished: dict[str, bool]) -> bool:
        """Whether every batch ``batch`` runs after exists and has no pending
        or active job; ``finished`` caches the answer per batch id."""
        for before in _after(batch.options):
            if before not in finished:
                finished[before] = await self._finished(batch.batch_id, before)
            if not finished[before]:
                return False
        return True

    async def _finished(self, batch_id: str, before: str) -> bool:
        try:
            counts = (await self._store.get_batch(before)).counts
        except BatchNotFound:
            told = (batch_id, before)
            if told not in self._missing_told:
                self._missing_told.add(told)
                log.warning("[batch %s] waits for batch %r, which does not exist", *told)
            return False
        return counts.pending == 0 and counts.active == 0

    async def _start(self, batch_id: str) -> bool:
        try:
            result = await self._runs.start(batch_id, only_with_work=True)
        except StoreError:
            raise
        except BatchNotFound:
            return False  # deleted since it was offered
        except EngineError as exc:
            log.error("[batch %s] cannot start: %s", batch_id, exc)
            return False
        if result is StartResult.STARTED:
            log.info("[batch %s] started by itself", batch_id)
        return result is StartResult.STARTED


def _after(options: Mapping[str, object]) -> list[str]:
    after = options.get("after")
    return [item for item in after if isinstance(item, str)] if isinstance(after, list) else []
