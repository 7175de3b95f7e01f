"""The Engine: the facade every server and command-line call goes through.

Design notes
------------
An engine comes from ``open_engine(settings)`` (``engine.core.startup``),
whose nursery owns the store, the bus, every child and run.
The facade keeps its store and bus to itself (callers read batches, jobs
and events through its methods) and hands the work to the runs
(``engine.core.runs``), its part in the cluster: heartbeat, leases,
takeover, auto-start (``engine.core.cluster``) and the settings applied
(``engine.core.policy``), all built and wired together by
``engine.core.engine_parts``; its events come from the bus
(``engine.core.engine_events``).

A batch runs on at most one engine of the cluster, so what a caller sees
of runs is cluster-wide: ``runner_of`` names the engine that runs a batch,
and a batch running anywhere cannot be deleted.

Shutdown drains the runs with one deadline, ``now + grace``; a second
request ends the wait at once. Runs stopped by shutdown are handed over,
so another engine of the cluster resumes them at once.

With an event log (``engine.core.startup`` joins the bus to it), shutdown
waits (at most ``EVENT_FLUSH_SECONDS``) for the runs' final events to go
through the log before subscriptions end.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import trio

from engine.config.settings import Settings
from engine.core.bus import EventBus
from engine.core.engine_events import EngineEvents
from engine.core.engine_parts import build_engine_parts
from engine.core.scheduler import Scheduler
from engine.core.values import EngineStatus, JobRequest, StartResult
from engine.errors import BatchNotRunning, BatchRunning, Conflict, ShuttingDown
from engine.jobs.registry import JobRegistry
from engine.store import AddResult, BatchRecord, Counts, EngineRecord, JobPage, Store
from engine.store.records import starts_by_itself
from engine.supervisor.children import ChildSupervisor
from protocols.lifecycle import JobState

__all__ = [
    "EVENT_FLUSH_SECONDS",
    "Engine",
    "EngineStatus",
    "JobRequest",
    "StartResult",
]

#: How long shutdown waits for the events published here to come back from
#: the event log. A round trip or two when the store is up; when it is down
#: the events cannot be delivered at all, and shutdown must not hang on them.
EVENT_FLUSH_SECONDS = 5.0


class Engine(EngineEvents):
    """The running engine. Get one from ``open_engine``.

    Besides what each method lists, a method that uses the store raises
    ``StoreError`` when the store fails. Its events (subscriptions, bus
    statistics, ``publish``) come from ``EngineEvents``.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        bus: EventBus,
        registry: JobRegistry,
        nursery: trio.Nursery,
        supervisor: ChildSupervisor,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.owner = f"engine-{uuid.uuid4().hex[:12]}"
        self._store = store
        self._bus = bus
        self._supervisor = supervisor
        self._nursery = nursery
        parts = build_engine_parts(
            settings=settings,
            store=store,
            bus=bus,
            registry=registry,
            nursery=nursery,
            supervisor=supervisor,
            clock=clock,
            owner=self.owner,
        )
        self._gate = parts.gate
        self._store_retry = parts.store_retry
        self._policy = parts.policy
        self._runs = parts.runs
        self._cluster = parts.cluster
        #: Fires the schedules; ``statuses()`` lists them (``GET /api/schedules``).
        self.scheduler = Scheduler(
            settings.schedules,
            store=store,
            create=self.create_batch,
            add=self.add_jobs,
            clock=clock,
            draining=lambda: self._runs.draining,
        )
        #: Requests on one job by id (``engine.core.job_control``).
        self.jobs = parts.jobs

    # --- batches and jobs ----------------------------------------------------

    async def create_batch(
        self,
        batch_id: str | None,
        type: str,
        jobs: Sequence[JobRequest],
        options: dict[str, Any] | None = None,
    ) -> tuple[str, AddResult]:
        """Create a batch and enqueue its jobs.

        Cancellation: may have partially happened (the batch may exist
        without its jobs).

        Raises:
            ShuttingDown, UnknownJobType, BatchExists; Conflict when
            ``options["after"]`` names the batch itself.
        """
        self._refuse_when_draining()
        self._policy.check_type(type)
        new_jobs = self._policy.new_jobs(type, jobs)
        batch_id = batch_id or uuid.uuid4().hex
        if batch_id in (options or {}).get("after", ()):
            raise Conflict(f"batch {batch_id} cannot wait for itself (options.after)")
        await self._store.create_batch(batch_id, type, options or {})
        result = await self._store.add_jobs(batch_id, new_jobs)
        if self.settings.auto_start or starts_by_itself(options or {}):
            self._cluster.wake()
        return batch_id, result

    async def add_jobs(self, batch_id: str, jobs: Sequence[JobRequest]) -> AddResult:
        """Add jobs to an existing batch; a running batch picks them up.

        Cancellation: atomic (one store transaction).

        Raises:
            ShuttingDown, BatchNotFound, UnknownJobType.
        """
        self._refuse_when_draining()
        batch = await self._store.get_batch(batch_id)
        result = await self._store.add_jobs(batch_id, self._policy.new_jobs(batch.type, jobs))
        self._runs.wake(batch_id, result.enqueued)
        self._cluster.wake()
        return result

    async def get_batch(self, batch_id: str) -> BatchRecord:
        """The batch with its counts. Raises ``BatchNotFound``.

        Cancellation: atomic.
        """
        return await self._store.get_batch(batch_id)

    async def list_batches(self) -> list[BatchRecord]:
        """Every batch in the store with its counts, oldest first.

        Cancellation: atomic.
        """
        return await self._store.list_batches()

    async def list_jobs(
        self,
        batch_id: str,
        *,
        state: JobState | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobPage:
        """The batch's jobs (of ``state`` only, when given) in insertion order,
        ``limit`` at a time, after ``cursor`` (a page's ``next_cursor``).

        Cancellation: atomic.

        Raises:
            BatchNotFound: no such batch.
            ValueError: the cursor is not one this store gave out.
        """
        return await self._store.list_jobs(batch_id, state=state, limit=limit, cursor=cursor)

    async def counts(self, batch_id: str) -> Counts:
        """The batch's jobs per state. Raises ``BatchNotFound``.

        Cancellation: atomic.
        """
        return await self._store.counts(batch_id)

    async def queue_length(self) -> int:
        """Pending jobs across every batch in the store.

        Cancellation: atomic.
        """
        return await self._store.queue_length()

    async def counts_by_type(self) -> dict[str, Counts]:
        """Jobs per state of each job type, across every batch in the store.

        Cancellation: atomic.
        """
        return await self._store.counts_by_type()

    async def delete_batch(self, batch_id: str) -> None:
        """Delete an idle batch with its jobs. The store refuses in the same
        step as the delete if an engine took the run after this one looked.

        Cancellation: atomic.

        Raises:
            BatchRunning: it is running, here or on another engine.
            BatchNotFound: no such batch.
        """
        runner = self.runner_of(await self._store.get_batch(batch_id))
        if runner is not None:
            raise BatchRunning(f"batch {batch_id!r} is running on engine {runner!r}")
        await self._store.delete_batch(batch_id)

    async def retry(self, batch_id: str) -> int:
        """Failed jobs back to pending; a running batch picks them up.

        Cancellation: atomic.

        Raises:
            BatchNotFound: no such batch.
        """
        requeued = await self._store.retry_failed(batch_id)
        self._runs.wake(batch_id)
        self._cluster.wake()
        return requeued

    # --- runs ---------------------------------------------------------------

    def is_running(self, batch_id: str) -> bool:
        """Whether this engine runs the batch now."""
        return batch_id in self._runs

    def runner_of(self, record: BatchRecord) -> str | None:
        """The id of the engine of the cluster that runs the batch (this
        one's ``owner`` included), or None when it runs nowhere."""
        if record.run_owner is not None:
            return record.run_owner
        return self.owner if record.batch_id in self._runs else None

    def eta_seconds(self, batch_id: str) -> float | None:
        """Seconds until this engine's run of the batch finishes its jobs
        (``EtaEstimator``); None when it does not run here or is unknown."""
        return self._runs.eta_seconds(batch_id)

    async def engines(self) -> list[EngineRecord]:
        """The live engines of the cluster (this one included once it has
        sent its first heartbeat), by engine id.

        Cancellation: atomic.
        """
        return await self._cluster.live_engines()

    async def start(self, batch_id: str) -> StartResult:
        """Start processing every pending job of the batch in a child.

        Never waits for capacity (``CAPACITY_REACHED``, which the HTTP layer
        answers 429); waits only for the child to be taken (a warm child
        makes that immediate).

        Cancellation: may have partially happened (the run may have started).

        Raises:
            ShuttingDown: the engine is draining.
            BatchNotFound: no such batch.
            ChildCrashed: the child could not be started.
        """
        self._refuse_when_draining()
        return await self._runs.start(batch_id)

    async def wait_warm(self) -> None:
        """Return once the ``WARM_CHILDREN`` spare children are started and
        idle, so the next ``start`` takes one without waiting.

        Cancellation: atomic.
        """
        await self._supervisor.wait_warm()

    async def wait_stopped(self, batch_id: str) -> None:
        """Return once the batch is not running here (at once if it is not).

        Cancellation: atomic.
        """
        await self._runs.wait_stopped(batch_id)

    async def cancel(self, batch_id: str) -> None:
        """Stop a running batch: in-flight jobs back to pending, the child
        gets the grace period, then SIGKILL. Returns at once.

        Cancellation: atomic.

        Raises:
            BatchNotRunning: it is not running here (the message names the
                engine of the cluster that runs it, if one does).
            BatchNotFound: no such batch.
        """
        deadline = trio.current_time() + self.settings.shutdown_grace_seconds
        if self._runs.cancel(batch_id, deadline):
            await trio.lowlevel.checkpoint()
            return
        runner = self.runner_of(await self._store.get_batch(batch_id))
        if runner is not None:
            raise BatchNotRunning(f"batch {batch_id!r} runs on engine {runner!r}: cancel it there")
        raise BatchNotRunning(f"batch {batch_id!r} is not running")

    def pause(self) -> None:
        """Stop handing out jobs; children finish what they hold."""
        self._gate.close()

    def resume(self) -> None:
        """Hand out jobs again."""
        self._gate.open()

    def status(self) -> EngineStatus:
        """A snapshot of the engine."""
        return self._runs.status()

    @property
    def is_shutting_down(self) -> bool:
        return self._runs.draining

    async def store_healthy(self, timeout: float = 2.0) -> bool:
        """Whether the store answers a ping within ``timeout`` seconds and
        takes what the runs write (``StoreRetry.check``).

        Cancellation: atomic.
        """
        return await self._store_retry.check(self._store, timeout)

    async def shutdown(self) -> None:
        """Stop accepting work, let children finish within the grace period,
        SIGKILL what is left; return once every run has ended. A call made
        while another one waits ends the wait at once (children are killed
        now); a call after the shutdown completed does nothing. With an
        event log, it then waits (at most ``EVENT_FLUSH_SECONDS``) for the
        events published here to come back from the log.

        Cancellation: may have partially happened; children already asked to
        stop keep stopping (their deadline is set).
        """
        if self._runs.draining:
            self._runs.kill_now()
        else:
            self._runs.drain(trio.current_time() + self.settings.shutdown_grace_seconds)
        await self._runs.wait_all_stopped()
        with trio.move_on_after(EVENT_FLUSH_SECONDS):
            await self._bus.flush()

    async def _open(self) -> None:
        self._supervisor.keep_warm()
        await self._cluster.open(self._nursery)
        self._nursery.start_soon(self.scheduler.serve)
        self._nursery.start_soon(self.jobs.serve_asks)

    async def _leave(self) -> None:
        self.jobs.close()
        await self._cluster.leave()

    def _refuse_when_draining(self) -> None:
        if self._runs.draining:
            raise ShuttingDown("the engine is shutting down")
