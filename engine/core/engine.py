"""The Engine: one nursery that owns the store, the bus, every child and run.

Design notes
------------
``open_engine(settings)`` is the only way to get an engine; leaving its
``async with`` block shuts it down (gracefully, within the grace period).

``start`` never waits for capacity: it answers at once ``STARTED``,
``ALREADY_RUNNING`` or ``CAPACITY_REACHED``, which the HTTP layer maps to
200 / 202 / 429. Capacity is a ``trio.CapacityLimiter`` of
``MAX_ACTIVE_BATCHES`` borrowed on behalf of the batch id for the length of
its run.

Shutdown is one deadline for everyone: stop claiming, ask every child to
finish what it holds, SIGKILL what is left at ``now + grace``; a second
request ends the wait at once. Runs stopped by shutdown stay remembered as
running in the store, so the next engine on the same store resumes them.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from engine.config.settings import RateLimit, Settings
from engine.core.bus import EventBus
from engine.core.limits import RateLimiter, TypeGate
from engine.core.runner import BatchRunner, RunLimits, StopReason
from engine.errors import (
    BatchNotRunning,
    BatchRunning,
    ShuttingDown,
    StoreError,
    UnknownJobType,
)
from engine.jobs.registry import REGISTRY, JobRegistry, load_job_modules
from engine.store import AddResult, BatchRecord, NewJob, Store, open_store
from engine.supervisor.children import ChildSupervisor
from engine.supervisor.spawner import ProcessSpawner, Spawner

__all__ = ["Engine", "EngineStatus", "JobRequest", "StartResult", "open_engine"]

log = logging.getLogger("batchyard.engine")


class StartResult(enum.Enum):
    """What ``Engine.start`` did."""

    STARTED = "started"
    ALREADY_RUNNING = "already-running"
    CAPACITY_REACHED = "capacity-reached"


@attrs.frozen(kw_only=True)
class JobRequest:
    """A job as a caller asks for it; ``type`` None means the batch's type."""

    payload: Any = None
    type: str | None = None
    key: str | None = None
    priority: int = 0
    delay_seconds: float = 0.0


@attrs.frozen(kw_only=True)
class EngineStatus:
    """A snapshot for ``GET /api/status``."""

    running_batches: tuple[str, ...]
    active_batches: int
    max_batches: int
    is_shutting_down: bool
    paused: bool


class _Gate:
    """The pause switch: open unless paused."""

    def __init__(self) -> None:
        self._open = trio.Event()
        self._open.set()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def close(self) -> None:
        if self._open.is_set():
            self._open = trio.Event()

    def open(self) -> None:
        self._open.set()

    async def wait_open(self) -> None:
        await self._open.wait()


def _limiter(rate: RateLimit) -> RateLimiter | None:
    return None if rate.unlimited else RateLimiter(rate.count, rate.per_seconds)


_NO_GATE = TypeGate()


class Engine:
    """The running engine. Get one from ``open_engine``."""

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
        self.store = store
        self.bus = bus
        self.registry = registry
        self.owner = f"engine-{uuid.uuid4().hex[:12]}"
        self._nursery = nursery
        self._supervisor = supervisor
        self._clock = clock
        self._capacity = trio.CapacityLimiter(settings.max_active_batches)
        self._runners: dict[str, BatchRunner] = {}
        self._gate = _Gate()
        self._shutting_down = False
        self._all_stopped = trio.Event()  # set while no run is going
        self._all_stopped.set()
        self._resume_queue: list[str] = []
        self._type_gates = {
            name: TypeGate(
                rate=None if overrides.rate_limit is None else _limiter(overrides.rate_limit),
                slots=None
                if overrides.concurrency is None
                else trio.CapacityLimiter(overrides.concurrency),
            )
            for name, overrides in settings.type_overrides.items()
        }

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
            ShuttingDown, UnknownJobType, BatchExists.
        """
        self._refuse_when_draining()
        new_jobs = self._new_jobs(type, jobs)
        batch_id = batch_id or uuid.uuid4().hex
        await self.store.create_batch(batch_id, type, options or {})
        return batch_id, await self.store.add_jobs(batch_id, new_jobs)

    async def add_jobs(self, batch_id: str, jobs: Sequence[JobRequest]) -> AddResult:
        """Add jobs to an existing batch; a running batch picks them up.

        Cancellation: atomic (one store transaction).

        Raises:
            ShuttingDown, BatchNotFound, UnknownJobType.
        """
        self._refuse_when_draining()
        batch = await self.store.get_batch(batch_id)
        result = await self.store.add_jobs(batch_id, self._new_jobs(batch.type, jobs))
        runner = self._runners.get(batch_id)
        if runner is not None:
            runner.wake(result.enqueued)
        return result

    def _new_jobs(self, default_type: str, jobs: Sequence[JobRequest]) -> list[NewJob]:
        """The jobs as stored, each with its type's attempts.

        Raises:
            UnknownJobType: a job's type (its own or the batch's) is not
                registered.
        """
        attempts: dict[str, int] = {}
        for type_name in {job.type or default_type for job in jobs}:
            if type_name not in self.registry:
                raise UnknownJobType(f"unknown job type {type_name!r}")
            attempts[type_name] = self.settings.for_type(type_name).max_attempts
        return [
            NewJob(
                type=job.type or default_type,
                payload=job.payload,
                key=job.key,
                priority=job.priority,
                delay_seconds=job.delay_seconds,
                max_attempts=attempts[job.type or default_type],
            )
            for job in jobs
        ]

    async def get_batch(self, batch_id: str) -> BatchRecord:
        """The batch with its counts. Raises ``BatchNotFound``.

        Cancellation: atomic.
        """
        return await self.store.get_batch(batch_id)

    async def delete_batch(self, batch_id: str) -> None:
        """Delete an idle batch with its jobs.

        Cancellation: atomic.

        Raises:
            BatchRunning: it is running.
            BatchNotFound: no such batch.
        """
        if batch_id in self._runners:
            raise BatchRunning(f"batch {batch_id!r} is running")
        await self.store.delete_batch(batch_id)

    async def retry(self, batch_id: str) -> int:
        """Failed jobs back to pending; a running batch picks them up.

        Cancellation: atomic.

        Raises:
            BatchNotFound: no such batch.
        """
        requeued = await self.store.retry_failed(batch_id)
        runner = self._runners.get(batch_id)
        if runner is not None:
            runner.wake()
        return requeued

    # --- runs ---------------------------------------------------------------

    def is_running(self, batch_id: str) -> bool:
        """Whether this engine runs the batch now."""
        return batch_id in self._runners

    async def start(self, batch_id: str) -> StartResult:
        """Start processing every pending job of the batch in a child.

        Never waits for capacity; waits only for the child to be taken (a
        warm child makes that immediate).

        Cancellation: may have partially happened (the run may have started).

        Raises:
            ShuttingDown: the engine is draining.
            BatchNotFound: no such batch.
            ChildCrashed: the child could not be started.
        """
        self._refuse_when_draining()
        await self.store.get_batch(batch_id)
        if batch_id in self._runners:
            return StartResult.ALREADY_RUNNING
        try:
            self._capacity.acquire_on_behalf_of_nowait(batch_id)
        except trio.WouldBlock:
            return StartResult.CAPACITY_REACHED
        runner = self._make_runner(batch_id)
        self._runners[batch_id] = runner
        if self._all_stopped.is_set():
            self._all_stopped = trio.Event()
        try:
            await self._nursery.start(self._run, runner)
        except BaseException:
            self._forget(runner)
            raise
        return StartResult.STARTED

    def _make_runner(self, batch_id: str) -> BatchRunner:
        settings = self.settings
        return BatchRunner(
            batch_id=batch_id,
            store=self.store,
            bus=self.bus,
            supervisor=self._supervisor,
            limits=RunLimits(
                concurrency=settings.concurrency,
                batch_size=settings.batch_size,
                lease_seconds=settings.lease_seconds,
                backoff_seconds=settings.job_backoff_seconds,
                batch_retries=settings.batch_retries,
                prefetch=self._prefetch(),
                rate=_limiter(settings.rate_limit),
                type_gate=self._type_gate,
            ),
            owner=self.owner,
            gate=self._gate,
            clock=self._clock,
        )

    def _type_gate(self, type_name: str) -> TypeGate:
        return self._type_gates.get(type_name, _NO_GATE)

    def _prefetch(self) -> int:
        # Jobs queued in a child start whenever a slot frees there, not when
        # the engine took their start from a rate limiter; so under any rate
        # limit nothing is queued ahead, and the limit holds at the start.
        rated = not self.settings.rate_limit.unlimited or any(
            gate.rate is not None for gate in self._type_gates.values()
        )
        return 0 if rated else self.settings.concurrency

    async def _run(self, runner: BatchRunner, task_status: trio.TaskStatus[None]) -> None:
        # Before it has started, a run's failure is the caller's (start()
        # raises it); after, it is this run's alone and must not take the
        # engine down with it: subscribers get an error event instead.
        try:
            await runner.run(task_status=task_status)
        except Exception as exc:
            if not runner.started:
                raise
            log.exception("[batch %s] run failed", runner.batch_id)
            runner.publish_failure(exc)
        finally:
            self._forget(runner)
            if not self._shutting_down:
                self._nursery.start_soon(self._resume_next)

    def _forget(self, runner: BatchRunner) -> None:
        if self._runners.get(runner.batch_id) is runner:
            del self._runners[runner.batch_id]
            self._capacity.release_on_behalf_of(runner.batch_id)
        runner.stopped.set()
        if not self._runners:
            self._all_stopped.set()

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
        runner = self._runners.get(batch_id)
        if runner is None:
            await trio.lowlevel.checkpoint()
        else:
            await runner.stopped.wait()

    async def cancel(self, batch_id: str) -> None:
        """Stop a running batch: in-flight jobs back to pending, the child
        gets the grace period, then SIGKILL. Returns at once.

        Cancellation: atomic.

        Raises:
            BatchNotRunning: it is not running here.
        """
        await trio.lowlevel.checkpoint()
        runner = self._runners.get(batch_id)
        if runner is None:
            raise BatchNotRunning(f"batch {batch_id!r} is not running")
        runner.stop(
            StopReason.CANCELLED, trio.current_time() + self.settings.shutdown_grace_seconds
        )

    def pause(self) -> None:
        """Stop handing out jobs; children finish what they hold."""
        self._gate.close()

    def resume(self) -> None:
        """Hand out jobs again."""
        self._gate.open()

    def status(self) -> EngineStatus:
        """A snapshot of the engine."""
        return EngineStatus(
            running_batches=tuple(self._runners),
            active_batches=len(self._runners),
            max_batches=self.settings.max_active_batches,
            is_shutting_down=self._shutting_down,
            paused=not self._gate.is_open,
        )

    @property
    def is_shutting_down(self) -> bool:
        return self._shutting_down

    async def store_healthy(self, timeout: float = 2.0) -> bool:
        """Whether the store answers within ``timeout`` seconds.

        Cancellation: atomic.
        """
        with trio.move_on_after(timeout):
            try:
                await self.store.ping()
            except StoreError:
                return False
            return True
        return False

    # --- resume and shutdown ------------------------------------------------

    async def _resume_remembered(self) -> None:
        remembered = await self.store.running_batches()
        self._resume_queue = sorted(remembered)
        await self._resume_next()

    async def _resume_next(self) -> None:
        while self._resume_queue and not self._shutting_down:
            batch_id = self._resume_queue[0]
            try:
                result = await self.start(batch_id)
            except Exception as exc:
                log.error("[batch %s] cannot resume: %s", batch_id, exc)
                self._resume_queue.pop(0)
                await self.store.clear_running(batch_id)
                continue
            if result is StartResult.CAPACITY_REACHED:
                return
            self._resume_queue.pop(0)
            if result is StartResult.STARTED:
                log.info("[batch %s] resumed", batch_id)

    async def shutdown(self) -> None:
        """Stop accepting work, let children finish within the grace period,
        SIGKILL what is left; return once every run has ended. A call made
        while another one waits ends the wait at once (children are killed
        now); a call after the shutdown completed does nothing.

        Cancellation: may have partially happened; children already asked to
        stop keep stopping (their deadline is set).
        """
        if self._shutting_down:
            if self._runners:
                self._supervisor.kill_now.set()
            await self._all_stopped.wait()
            return
        self._shutting_down = True
        deadline = trio.current_time() + self.settings.shutdown_grace_seconds
        for runner in list(self._runners.values()):
            runner.stop(StopReason.SHUTDOWN, deadline)
        self._supervisor.stop_all(deadline)
        self._gate.open()
        await self._all_stopped.wait()

    def _refuse_when_draining(self) -> None:
        if self._shutting_down:
            raise ShuttingDown("the engine is shutting down")

    async def _renew_leases(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await trio.sleep(interval)
            try:
                await self.store.renew_leases(self.owner, self.settings.lease_seconds)
                recovered = await self.store.recover_expired_leases()
            except StoreError as exc:
                log.error("cannot renew leases: %s", exc)
                continue
            if recovered:
                log.warning("recovered %d jobs from expired leases", recovered)
                for runner in self._runners.values():
                    runner.wake()


@asynccontextmanager
async def open_engine(
    settings: Settings,
    *,
    registry: JobRegistry = REGISTRY,
    store: Store | None = None,
    spawner: Spawner | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[Engine]:
    """Open the store, start the warm children, resume remembered runs.

    Leaving the block shuts the engine down gracefully (``Engine.shutdown``).
    ``store``, when given, is used instead of opening ``settings.store_url``
    (and stays the caller's to close). ``spawner`` makes the children
    (default: ``python -m engine.child`` processes). ``clock`` is the wall
    clock of due times and backoffs; it must be the store's own (tests drive
    both from trio's clock).

    Cancellation: if the enclosing scope is cancelled, children still get
    their grace period (each child's cancel delivery is bounded by it).

    Raises:
        ConfigError: the store URL is unusable.
        JobError: a job module cannot be imported.
        StoreUnavailable: the store cannot be opened.
    """
    load_job_modules(settings.job_modules)
    async with contextlib.AsyncExitStack() as stack:
        if store is None:
            store = await stack.enter_async_context(open_store(settings.store_url))
        recovered = await store.recover_expired_leases()
        if recovered:
            log.warning("recovered %d jobs from expired leases", recovered)
        async with trio.open_nursery() as nursery:
            supervisor = ChildSupervisor(
                nursery,
                spawner=spawner or ProcessSpawner(settings.job_modules),
                warm=settings.warm_children,
                grace_seconds=settings.shutdown_grace_seconds,
            )
            bus = EventBus(ring_size=settings.event_ring_size, buffer=settings.subscriber_buffer)
            engine = Engine(
                settings=settings,
                store=store,
                bus=bus,
                registry=registry,
                nursery=nursery,
                supervisor=supervisor,
                clock=clock,
            )
            supervisor.keep_warm()
            nursery.start_soon(engine._renew_leases)
            await engine._resume_remembered()
            try:
                yield engine
            finally:
                with trio.move_on_after(settings.shutdown_grace_seconds + 15, shield=True):
                    await engine.shutdown()
                bus.close()
                nursery.cancel_scope.cancel()
