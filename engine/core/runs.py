"""The batch runs of one engine: each a task of the engine's nursery, at
most ``MAX_ACTIVE_BATCHES`` at once.

Design notes
------------
Capacity is a ``trio.CapacityLimiter`` borrowed on behalf of the batch id
for the length of its run; ``start`` never waits for it, it answers
``CAPACITY_REACHED`` instead.

Before it has started, a run's failure is the caller's (``start`` raises
it); after, it is that run's alone and must not take the engine down with
it: subscribers get an ``error`` event instead, and its run record is
handed over, so the cluster (this engine included) resumes it as a run
interrupted. However a run ends, it is forgotten (its capacity freed) and
``on_change`` is called, as it is once a run has started, so whatever
waits for capacity looks again and the engine's heartbeat names its runs
(the cluster, ``engine.core.cluster``).

Fencing (``engine.core.fence``) stops every run at once, its child
SIGKILLed, when the engine's leases may lapse before it can renew them;
until the fence is lifted no run starts (``start`` raises
``StoreUnavailable``: the engine cannot know what it still holds).

Draining is one deadline for everyone: stop claiming, ask every child to
finish what it holds, SIGKILL what is left at the deadline. Runs stopped so
are handed over in the store, so another engine of the cluster (or the
next one on the same store) resumes them at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from engine.core.bus import EventBus
from engine.core.follow_ups import FollowUpRules
from engine.core.held import CLEANUP_SECONDS
from engine.core.pause import PauseSwitch
from engine.core.policy import EnginePolicy
from engine.core.retry import StoreRetry
from engine.core.runner import BatchRunner, NothingToRun, StopReason
from engine.core.values import EngineStatus, StartResult
from engine.errors import BatchRunning, StoreError, StoreUnavailable
from engine.store import Store
from engine.supervisor.children import ChildSupervisor

__all__ = ["Runs"]

log = logging.getLogger("batchyard.engine")


class Runs:
    """The runs going on, with what each new one is made of.

    Args:
        nursery: owns every run's task.
        capacity: how many runs may go on at once.
        store, bus, supervisor: shared engine services (not owned).
        policy: the limits of each new run.
        owner: the lease owner name of this engine.
        gate: the engine's pause switch.
        clock: wall-clock seconds, the store's clock (due times, backoffs).
        retry: the engine's policy for store steps met by an outage.
        on_change: called (quick, never raising) whenever a run has
            started or ended.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        capacity: int,
        store: Store,
        bus: EventBus,
        supervisor: ChildSupervisor,
        policy: EnginePolicy,
        owner: str,
        gate: PauseSwitch,
        clock: Callable[[], float],
        retry: StoreRetry,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._nursery = nursery
        self._capacity = trio.CapacityLimiter(capacity)
        self._store = store
        self._bus = bus
        self._supervisor = supervisor
        self._policy = policy
        self._owner = owner
        self._gate = gate
        self._clock = clock
        self._retry = retry
        self._runners: dict[str, BatchRunner] = {}
        self._all_stopped = trio.Event()  # set while no run is going
        self._all_stopped.set()
        self._draining = False
        self._fenced = False
        self._on_change = on_change
        self._failed_at: dict[str, float] = {}  # trio time of a run's failure here

    @property
    def draining(self) -> bool:
        """Whether ``drain`` was called: no run starts any more."""
        return self._draining

    def get(self, batch_id: str) -> BatchRunner | None:
        """The run of ``batch_id`` on this engine, None when it runs not here."""
        return self._runners.get(batch_id)

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self._runners

    @property
    def free(self) -> int:
        """How many more runs may start now."""
        return int(self._capacity.available_tokens)

    def status(self) -> EngineStatus:
        """A snapshot: the batches running now (oldest run first), capacity,
        whether draining or paused."""
        return EngineStatus(
            engine_id=self._owner,
            running_batches=tuple(self._runners),
            active_batches=len(self._runners),
            max_batches=int(self._capacity.total_tokens),
            is_shutting_down=self._draining,
            paused=not self._gate.is_open,
        )

    async def start(self, batch_id: str, *, only_with_work: bool = False) -> StartResult:
        """Start the batch's run unless it runs already (here, or on another
        engine of the cluster) or capacity is reached; with ``only_with_work``,
        also unless it has no pending or active job once this engine holds
        its run (it ran to its end elsewhere: ``ALREADY_RUNNING``, as if it
        still ran).

        Cancellation: may have partially happened (the run may have started).

        Raises:
            BatchNotFound: no such batch.
            ChildCrashed: the run's first child could not be started.
            StoreUnavailable: the engine is fenced (it could not renew its
                leases).
        """
        if batch_id in self._runners:
            return StartResult.ALREADY_RUNNING
        if self._fenced:
            raise StoreUnavailable("this engine could not renew its leases: it starts no run")
        record = await self._store.get_batch(batch_id)
        if record.run_owner not in (None, self._owner):  # before capacity: 202, never 429
            return StartResult.ALREADY_RUNNING
        try:
            self._capacity.acquire_on_behalf_of_nowait(batch_id)
        except trio.WouldBlock:
            return StartResult.CAPACITY_REACHED
        runner = BatchRunner(
            batch_id=batch_id,
            store=self._store,
            bus=self._bus,
            supervisor=self._supervisor,
            limits=self._policy.run_limits(record.type),
            owner=self._owner,
            gate=self._gate,
            clock=self._clock,
            retry=self._retry,
            only_with_work=only_with_work,
            follow_ups=FollowUpRules(new_jobs=self._policy.new_jobs, added=self._jobs_added),
        )
        self._runners[batch_id] = runner
        if self._all_stopped.is_set():
            self._all_stopped = trio.Event()
        try:
            await self._nursery.start(self._run, runner)
        except (BatchRunning, NothingToRun):  # another engine holds (or held) the run
            self._forget(runner)
            return StartResult.ALREADY_RUNNING
        except BaseException:
            self._forget(runner)
            raise
        self._on_change()
        return StartResult.STARTED

    def failed_at(self, batch_id: str) -> float | None:
        """When (``trio.current_time()``) the batch's last run here failed
        after it had started, unless a later run ended in order."""
        return self._failed_at.get(batch_id)

    async def _run(self, runner: BatchRunner, task_status: trio.TaskStatus[None]) -> None:
        try:
            await runner.run(task_status=task_status)
            self._failed_at.pop(runner.batch_id, None)
        except Exception as exc:
            if not runner.started:
                raise
            log.exception("[batch %s] run failed", runner.batch_id)
            self._failed_at[runner.batch_id] = trio.current_time()
            runner.publish_failure(exc)
            await self._hand_over(runner.batch_id)
        finally:
            self._forget(runner)
            self._on_change()

    async def _hand_over(self, batch_id: str) -> None:
        # The run did not end in order, so it is not finished: handed over,
        # any engine of the cluster resumes it. When the store is what broke,
        # the record stays this engine's, and its takeover resumes it here.
        with trio.move_on_after(CLEANUP_SECONDS, shield=True):
            try:
                await self._store.release_run(batch_id, self._owner, finished=False)
            except StoreError as exc:
                log.error("[batch %s] cannot hand the run over: %s", batch_id, exc)

    def _forget(self, runner: BatchRunner) -> None:
        if self._runners.get(runner.batch_id) is runner:
            del self._runners[runner.batch_id]
            self._capacity.release_on_behalf_of(runner.batch_id)
        runner.stopped.set()
        if not self._runners:
            self._all_stopped.set()

    def eta_seconds(self, batch_id: str) -> float | None:
        """The batch's run's estimate of its remaining seconds; None when it
        does not run here or the estimate is unknown."""
        runner = self._runners.get(batch_id)
        return None if runner is None else runner.eta_seconds()

    def wake(self, batch_id: str, added: int = 0) -> None:
        """Tell the batch's run (if it runs) that ``added`` jobs came or
        jobs became due, so it looks again."""
        runner = self._runners.get(batch_id)
        if runner is not None:
            runner.wake(added)

    def _jobs_added(self, batch_id: str, added: int) -> None:
        """A handler added jobs to the batch: its run here (if any) and the
        cluster (which starts batches by themselves) look again."""
        self.wake(batch_id, added)
        self._on_change()

    def wake_all(self) -> None:
        """Tell every run to look for due jobs again."""
        for runner in self._runners.values():
            runner.wake()

    def cancel(self, batch_id: str, deadline: float) -> bool:
        """Ask the batch's run to stop as cancelled (SIGKILL its child at
        ``deadline``); whether it was running."""
        runner = self._runners.get(batch_id)
        if runner is not None:
            runner.stop(StopReason.CANCELLED, deadline)
        return runner is not None

    @property
    def fenced(self) -> bool:
        """Whether runs are refused: the engine could not renew its leases."""
        return self._fenced

    def fence(self) -> None:
        """Stop every run now, SIGKILLing its child, and start none until
        ``unfence`` (the engine's leases may lapse). Never blocks."""
        self._fenced = True
        for runner in list(self._runners.values()):
            runner.fence()

    def unfence(self) -> None:
        """Runs may start again (the store took back what was this engine's)."""
        self._fenced = False

    def drain(self, deadline: float) -> None:
        """Start no run any more; ask every run and child to stop, and
        SIGKILL the children left at ``deadline``. The pause ends, so runs
        see the stop at once."""
        self._draining = True
        for runner in list(self._runners.values()):
            runner.stop(StopReason.SHUTDOWN, deadline)
        self._supervisor.stop_all(deadline)
        self._gate.open()

    def kill_now(self) -> None:
        """While draining: SIGKILL every child left now, not at the deadline."""
        if self._runners:
            self._supervisor.kill_all_now()

    async def wait_stopped(self, batch_id: str) -> None:
        """Return once the batch is not running (at once if it is not).

        Cancellation: atomic.
        """
        runner = self._runners.get(batch_id)
        if runner is None:
            await trio.lowlevel.checkpoint()
        else:
            await runner.stopped.wait()

    async def wait_all_stopped(self) -> None:
        """Return once no run is going.

        Cancellation: atomic.
        """
        await self._all_stopped.wait()
