"""BatchRunner: one batch run, one child at a time, nothing lost.

Design notes
------------
A run takes a child from the supervisor, binds it to the batch (``Begin``),
and runs two loops against it until the child exits:

* the **dispatcher** (``engine.core.dispatcher``) claims due jobs within
  the batch's concurrency credits and sends them to the child once the
  type gates admit them (the child keeps the batch's rate limit, handed
  the run's recent starts with ``Begin``); when nothing is due and nothing
  is held, the batch is finished: it sends ``Shutdown`` and the child exits
  0. It also makes sure, once a renewal period, that the run is still this
  engine's, and stops the run (``taken-over``) when it is not.
* the **reader** hands each burst of child messages to the ``Recorder``
  (``engine.core.recorder``): one store transaction, which also claims the
  jobs that replace the finished ones for the dispatcher to send
  (``engine.core.refill``), then the events, and the credits go back.

Every claimed job is in ``HeldJobs`` (``engine.core.held``) until its
outcome is recorded, so when the child exits, whatever is left goes back
to the store at once: refunded (not counted as an attempt) after a shutdown
or cancel; after a crash, counted (and failed when out of attempts) for
each job the child had reported active, since it may be what crashed it,
and refunded for jobs still queued in the child. The child reports a job
active before its handler runs.

A crash (non-zero exit, broken pipe, malformed IPC) publishes ``error`` and,
while ``batch_retries`` allow, the run starts over with a fresh child.

The store going away (``StoreUnavailable``) does not end a run: every store
step of the dispatcher, the recorder and the run's end is retried through
the engine's ``StoreRetry``, so the dispatcher claims nothing meanwhile, the
child keeps what it holds, and what it reported waits in ``HeldJobs`` until
the store takes it. A stop gives the run's ``Patience`` its deadline: store
steps give up there, and held jobs that cannot be released come back
through their lease. Releasing them (``engine.core.run_release``) waits
for the store a lease at most in any case (a run cancelled without a stop
has no deadline).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import trio

from engine.core.bus import EventBus
from engine.core.dispatcher import Dispatcher
from engine.core.eta import EtaEstimator
from engine.core.follow_ups import FollowUpRules
from engine.core.held import CLEANUP_SECONDS, HeldJobs
from engine.core.pause import PauseGate
from engine.core.progress import record_progress
from engine.core.recorder import Recorder
from engine.core.retry import Patience, StoreRetry
from engine.core.run_limits import RunLimits
from engine.core.run_release import release_held, release_run_record
from engine.core.watch import ChildStats, ChildWatch, watch_child
from engine.errors import BatchRunning, ChildCrashed, StoreUnavailable
from engine.store.base import Store
from engine.supervisor.children import Child, ChildSupervisor
from protocols import events, ipc

__all__ = ["BatchRunner", "NothingToRun", "StopReason"]

log = logging.getLogger("batchyard.runner")

_T = TypeVar("_T")


class NothingToRun(Exception):
    """A run asked for only with work found the batch without pending or
    active jobs once it held it (another engine ran it to its end
    meanwhile); it did not start."""


class StopReason:
    """Why a run was asked to stop early (the ``reason`` of its ``done``)."""

    SHUTDOWN = "shutdown"
    CANCELLED = "cancelled"
    #: Another engine holds the run now: this engine's lease ran out while
    #: it could not reach the store (cut off, frozen), and the cluster took
    #: the run over.
    TAKEN_OVER = "taken-over"
    #: This engine could not renew its leases for most of a lease: it
    #: stopped the run (its child killed) before another engine may take it
    #: over (``engine.core.fence``).
    FENCED = "fenced"


class BatchRunner:
    """Runs one batch until it has no work left or is stopped.

    Args:
        batch_id: the batch.
        store, bus, supervisor: shared engine services (not owned).
        limits: what bounds this run.
        owner: the lease owner name of this engine.
        gate: dispatching waits while it is closed (the engine's pause).
        clock: wall-clock seconds, the store's clock (due times, backoffs).
        retry: the engine's policy for store steps met by an outage.
        only_with_work: start only if the batch has pending or active jobs
            once this engine holds its run (a batch offered as startable, or
            a run handed over, may have been run to its end elsewhere since).
        follow_ups: the engine's rules for jobs handlers enqueue.
    """

    def __init__(
        self,
        *,
        batch_id: str,
        store: Store,
        bus: EventBus,
        supervisor: ChildSupervisor,
        limits: RunLimits,
        owner: str,
        gate: PauseGate,
        clock: Callable[[], float],
        retry: StoreRetry,
        only_with_work: bool = False,
        follow_ups: FollowUpRules | None = None,
    ) -> None:
        self.batch_id = batch_id
        self._only_with_work = only_with_work
        self._store = store
        self._supervisor = supervisor
        self._limits = limits
        self._owner = owner
        self.stop_reason: str | None = None
        self.started = False
        self.stopped = trio.Event()
        self._child: Child | None = None
        self._watch: ChildWatch | None = None
        self._continued = False  # the run goes on in a replacement child
        self._clock = clock
        self._retry = retry
        self._patience = Patience()
        self._serving = trio.CancelScope()  # the current child's reader and dispatcher
        self._dispatcher = Dispatcher(
            batch_id=batch_id,
            store=store,
            limits=limits,
            owner=owner,
            gate=gate,
            clock=clock,
            retry=retry,
            patience=self._patience,
            taken_over=self._taken_over,
        )
        self._recorder = Recorder(
            batch_id=batch_id,
            store=store,
            owner=owner,
            bus=bus,
            backoff_seconds=limits.backoff_seconds,
            clock=clock,
            retry=retry,
            patience=self._patience,
            follow_ups=follow_ups,
            throttle=limits.throttle,
            eta=EtaEstimator(starts_per_second=limits.starts_per_second),
        )

    def eta_seconds(self) -> float | None:
        """Seconds until this run has finished the batch's jobs; None when unknown."""
        return self._recorder.eta_seconds()

    # --- control, called by the engine --------------------------------------

    def wake(self, added: int = 0) -> None:
        """New jobs were added (or dispatching resumed): look again."""
        self._recorder.count_added(added)
        self._dispatcher.wake()

    def stop(self, reason: str, deadline: float) -> None:
        """Stop claiming; stop the child (``Shutdown`` or ``Cancel``) and
        SIGKILL it at ``deadline``. Never blocks; idempotent."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._patience.end_at(deadline)
        self._dispatcher.cancel()
        if self._child is not None:
            message: ipc.ParentMessage = (
                ipc.Cancel() if self.stop_reason == StopReason.CANCELLED else ipc.Shutdown()
            )
            self._child.stop(message, deadline)

    def fence(self) -> None:
        """Stop now as ``fenced``: stop claiming, SIGKILL the child at once,
        and touch the store no more (its steps raise ``StoreUnavailable``);
        what it holds comes back through the store. Never blocks; idempotent."""
        self.stop(StopReason.FENCED, trio.current_time())
        self._patience.abandon()
        self._serving.cancel()  # the reader too: it would only wait for the store
        if self._child is not None:
            self._child.kill()

    def cancel_job(self, job_id: str) -> bool:
        """Stop one job this run holds as ``cancelled``: the child is asked
        at once and replaced if its handler still runs after the grace
        (``engine.core.watch``). Whether the run holds the job. Never blocks."""
        return self._watch is not None and self._watch.cancel(job_id)

    def child_stats(self) -> ChildStats | None:
        """The current child's pid, resources and jobs run; None between children."""
        return None if self._watch is None else self._watch.statistics()

    def _watch_ended_in_replacement(self) -> bool:
        """Whether the last child was recycled or replaced on purpose (the
        run goes on in a fresh child)."""
        watch, self._watch = self._watch, None
        return watch is not None and (watch.recycling or watch.replaced)

    def _taken_over(self) -> None:
        self.stop(StopReason.TAKEN_OVER, trio.current_time() + self._limits.lease_seconds / 3)

    # --- the run ------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the batch to its end; ``task_status.started()`` once the first
        child has been taken for it.

        Cancellation: may have partially happened; held jobs are released
        (refunded) within a bounded cleanup.

        Raises:
            BatchRunning: another engine holds the batch's run (before
                ``started``).
            NothingToRun: ``only_with_work`` and the batch has no pending or
                active job (before ``started``; the run record is released).
            ChildCrashed: the first child could not be started (before
                ``started``); later crashes are reported as ``error`` events.
        """
        self._recorder.start_tally(await self._store.counts(self.batch_id))
        lease = self._limits.lease_seconds
        runner = await self._store.acquire_run(self.batch_id, self._owner, lease)
        if runner != self._owner:
            raise BatchRunning(f"batch {self.batch_id!r} runs on engine {runner!r}")
        self._dispatcher.owned_now()
        if self._only_with_work:
            counts = await self._store.counts(self.batch_id)
            if counts.pending == counts.active == 0:
                await self._store.release_run(self.batch_id, self._owner, finished=True)
                raise NothingToRun(f"batch {self.batch_id!r} has no pending or active job")
        retries_left = self._limits.batch_retries
        while True:
            try:
                child = await self._supervisor.take()
            except ChildCrashed as exc:
                if not self.started:
                    await self._release_run(finished=True)
                    raise
                crash: str | None = str(exc)
            else:
                if not self.started:
                    task_status.started()
                    self.started = True
                crash = await self._run_child(child)
                replaced = self._watch_ended_in_replacement()
                if replaced and crash is None and self.stop_reason is None:
                    self._continued = True  # one processing:started per run
                    continue
            if crash is None or self.stop_reason is not None:
                break
            restarting = retries_left > 0
            self._recorder.publish(
                events.RunError(batch_id=self.batch_id, error=crash, restarting=restarting)
            )
            if not restarting:
                await self._release_run(finished=True)
                return
            retries_left -= 1
        await self._finish()

    async def _finish(self) -> None:
        # Stopped by shutdown, the run is handed over: resumed at once by
        # whichever engine comes first (this one's next start included).
        # Fenced, it is not finished either; the store is not touched here:
        # the fence's take-back hands the record over once it answers.
        try:
            counts = await self._store_step(partial(self._store.counts, self.batch_id))
        except StoreUnavailable as exc:
            log.warning("[batch %s] the run ends without the store: %s", self.batch_id, exc)
            counts = self._recorder.finished_counts()
        handed_over = (StopReason.SHUTDOWN, StopReason.FENCED)
        await self._release_run(finished=self.stop_reason not in handed_over)
        self._recorder.publish(
            events.RunDone(
                batch_id=self.batch_id,
                completed=counts.completed,
                failed=counts.failed,
                reason=self.stop_reason,
            )
        )

    async def _release_run(self, *, finished: bool) -> None:
        """Forget the run record or hand it over (``engine.core.run_release``)."""
        await release_run_record(
            self._store, self.batch_id, self._owner, finished=finished, store_step=self._store_step
        )

    async def _run_child(self, child: Child) -> str | None:
        """One child's life. None when it ended in order; else why it crashed."""
        self._child = child
        child.assign(self.batch_id)
        self._dispatcher.rearm()
        credits = trio.CapacityLimiter(self._limits.concurrency + self._limits.prefetch)
        held = HeldJobs(
            credits, retry=self._retry, patience=self._patience, starts=self._limits.starts
        )
        watch = self._watch = watch_child(
            child, held, self._limits, self._clock, stop_feeding=self._dispatcher.cancel
        )
        crash: str | None = None
        try:
            if self.stop_reason is not None:
                child.stop(ipc.Shutdown(), trio.current_time())
            else:
                await child.channel.send(self._begin())
                async with trio.open_nursery() as nursery:
                    self._serving = nursery.cancel_scope
                    nursery.start_soon(self._dispatcher.run, child, held)
                    nursery.start_soon(watch.run)
                    crash = await self._read(child, held)
                    if crash is not None:
                        child.kill()
                    nursery.cancel_scope.cancel()
        except ChildCrashed as exc:
            crash = str(exc)
            child.kill()
        except Exception:
            # The run itself broke (the store refused a step: a bug, not an
            # outage, which is waited out): the child goes now.
            child.kill()
            raise
        finally:
            with trio.move_on_after(CLEANUP_SECONDS, shield=True) as cleanup:
                code = await child.wait()
            if cleanup.cancelled_caught:
                log.error("[batch %s] cleanup timed out; leases will recover", self.batch_id)
            else:
                if crash is None and code != 0 and self.stop_reason is None:
                    crash = f"the child exited with code {code}"
                if watch.replaced:
                    crash = None  # killed on purpose: not a crash
                if watch.silenced is not None and self.stop_reason is None:
                    crash = watch.silenced  # killed for it: a crash, said so
                await release_held(
                    self._recorder,
                    held,
                    crashed=crash is not None,
                    lease_seconds=self._limits.lease_seconds,
                )
            self._child = None
            with trio.CancelScope(shield=True):
                await child.channel.aclose()
        return crash

    async def _store_step(self, step: Callable[[], Awaitable[_T]]) -> _T:
        """``step()`` retried while the store is away; once the run is
        stopped, only until its deadline (then ``StoreUnavailable``)."""
        return await self._retry.call(step, patience=self._patience)

    def _begin(self) -> ipc.Begin:
        """What binds a child to the run: its batch's rate limit comes with
        the run's starts still in its window (``engine.core.limits``)."""
        starts = self._limits.starts
        rate = None if starts is None else starts.handover(self._clock())
        return ipc.Begin(batch_id=self.batch_id, concurrency=self._limits.concurrency, rate=rate)

    # --- reading ------------------------------------------------------------

    async def _read(self, child: Child, held: HeldJobs) -> str | None:
        """Record what the child reports until it closes its pipe (None) or
        breaks it (why)."""
        while True:
            try:
                messages = await child.channel.receive_batch()
            except ChildCrashed as exc:
                return str(exc)
            if not messages:
                return None
            assert self._watch is not None
            if self._continued:
                messages = [m for m in messages if not isinstance(m, ipc.BatchStarted)]
            self._watch.observe(messages)
            await record_progress(self._store, messages, self._owner, self._store_step)
            await self._recorder.record(messages, held, self._dispatcher)
            self._dispatcher.wake()

    def publish_failure(self, error: BaseException) -> None:
        """End the run's event sequence after it broke (not a child crash)."""
        self._recorder.publish(
            events.RunError(batch_id=self.batch_id, error=f"the run failed: {error}")
        )
