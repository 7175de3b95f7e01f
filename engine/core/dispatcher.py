"""The dispatcher of a run: claiming a batch's due jobs and sending them to
its child, within the run's credits and limits.

Design notes
------------
The dispatcher claims up to ``batch_size`` due jobs at a time, never more
than the free concurrency *credits* (a ``trio.CapacityLimiter`` of the
batch's concurrency, held in ``HeldJobs``), and sends them in one
``RunJobs`` once the type gates admit them. When nothing
is due and nothing is held, the batch is finished: it sends ``Shutdown``
and the child exits 0. Otherwise it waits for the next due time, or until
it is woken (jobs added, outcomes recorded, dispatching resumed). Claims
are shielded so that a cancellation can never strand a claimed job outside
``HeldJobs``.

Most claims do not come from here: the recorder's store step that records
a burst of outcomes also claims the jobs replacing the finished ones
(``engine.core.refill``), when ``refill_claim`` allows it, and ``hand``
gives them to the dispatcher, held already; it sends them before it claims
again, and a wait for credits ends when jobs are handed or end. Its own claims
fill the credits that no burst freed (the first jobs, after a wait, after
a pause, when the run's ownership is due to be checked).

Limits: a claimed job of a type with limits of its own (``[types.NAME]``)
passes, on its way to the child, the type's ``TypeGate``, whose slots and
window every engine on the store shares; the batch's rate limit is the
child's to keep (``engine.core.limits``), so each job carries its ``cost``
there; a job whose type has a rate of its own waits first until its
batch's rate would let it start at once (``engine.core.batch_room``). Jobs of types
without a gate go first; the
jobs admitted so far go out before any wait, so a job waiting at a limit
never holds back the jobs ahead of it. It does hold back the jobs behind
it in the same claim, and the batch's next claim (head-of-line within one
batch; other batches' runs go on). A job's type slot is freed once its
outcome is recorded (``HeldJobs``). While a handler's ``RateLimited``
holds the run (``engine.core.throttle``), nothing is claimed and no claimed
job is sent. A claimed job waiting at a limit is
``active`` in the store meanwhile (its lease renewed), so nothing is
claimed ahead of the limits beyond the batch's free credits. Each type
rate take is in the job's name and its grant time (this engine's wall
clock) is noted on the held job, so the recorder can move it to the job's
real start.

Ownership: the run record is this engine's while its leases are renewed,
but an engine cut off from the store for longer than its lease has lost it
to another engine without knowing (a renewal does not say what it could
not renew). So before a claim the dispatcher makes sure the run is still
its own (``acquire_run``, which also renews it) whenever it last did so a
renewal period ago or more: one store call per run and period, off the
hot path. When another engine holds the run, this run stops claiming and
ends (``taken-over``); its child finishes what it holds within a renewal
period. A claim already on its way when the link was cut may still land
after the takeover: its jobs are this engine's and run here once.

Every store step here goes through the run's ``StoreRetry`` and
``Patience``: while the store is away nothing is claimed, and once the run
is stopped a step gives up at its deadline.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import trio

from engine.core.batch_room import wait_for_batch_room
from engine.core.held import CLEANUP_SECONDS, HeldJobs
from engine.core.pause import PauseGate
from engine.core.retry import Patience, StoreRetry
from engine.errors import ChildCrashed, StoreUnavailable
from engine.store.base import Store
from engine.store.records import Claim, JobRecord
from engine.supervisor.children import Child
from protocols import ipc
from protocols.run_jobs import job_object

if TYPE_CHECKING:
    from engine.core.run_limits import RunLimits

__all__ = ["Dispatcher"]

log = logging.getLogger("batchyard.runner")

_T = TypeVar("_T")


class Dispatcher:
    """Claims a batch's due jobs and sends them to the run's child, one
    child at a time (``run``), until the batch is finished or it is stopped.

    Args:
        batch_id: the batch.
        store: the shared store (not owned).
        limits: what bounds the run.
        owner: the lease owner name of this engine.
        gate: dispatching waits while it is closed (the engine's pause).
        clock: wall-clock seconds, the store's clock (due times).
        retry: the engine's policy for store steps met by an outage.
        patience: the run's: once it is stopped, store steps end at its
            deadline.
        taken_over: called (quick, never raising) when another engine
            holds the run; it stops the run.
    """

    def __init__(
        self,
        *,
        batch_id: str,
        store: Store,
        limits: RunLimits,
        owner: str,
        gate: PauseGate,
        clock: Callable[[], float],
        retry: StoreRetry,
        patience: Patience,
        taken_over: Callable[[], None],
    ) -> None:
        self._batch_id = batch_id
        self._store = store
        self._limits = limits
        self._owner = owner
        self._gate = gate
        self._clock = clock
        self._retry = retry
        self._patience = patience
        self._taken_over = taken_over
        self._wake = trio.Event()
        self._scope = trio.CancelScope()
        self._owned_at = 0.0  # trio time this engine last made sure it holds the run
        # Jobs claimed by the recorder's store step, held, to be sent; and
        # whether such claims are welcome (while ``run`` serves a child).
        self._handed: list[JobRecord] = []
        self._refilling = False
        # Jobs this dispatcher's claims took back while the recorder still
        # held them (``_claim``), to be sent once it has let go of them.
        self._returning: list[JobRecord] = []

    def wake(self) -> None:
        """Look for due jobs again now (jobs added, outcomes recorded,
        dispatching resumed)."""
        self._wake.set()

    def owned_now(self) -> None:
        """The engine has just made sure it holds the run (it acquired it)."""
        self._owned_at = trio.current_time()

    def rearm(self) -> None:
        """A new child: ``cancel`` from now on ends its dispatching."""
        self._scope = trio.CancelScope()

    def cancel(self) -> None:
        """Stop claiming for the current child. Never blocks; idempotent."""
        self._scope.cancel()

    def refill_claim(self, freed: int) -> Claim | None:
        """A claim of up to ``freed`` jobs (``batch_size`` at most) for the
        recorder's store step that ends ``freed`` held jobs; None while
        the dispatcher is not serving a child, is stopped, is paused or
        held back by a handler's ``RateLimited``, or is
        due to make sure the run is still this engine's (its own claim does
        that first)."""
        if freed <= 0 or not self._refilling or self._scope.cancel_called:
            return None
        if not self._gate.is_open or self._limits.throttle.held():
            return None
        lease = self._limits.lease_seconds
        if trio.current_time() - self._owned_at >= lease / 3:
            return None
        limit = min(freed, self._limits.batch_size)
        return Claim(batch_id=self._batch_id, limit=limit, lease_seconds=lease)

    def hand(self, jobs: list[JobRecord]) -> None:
        """Send ``jobs`` (claimed by the recorder's step, held already)
        before claiming again. Never blocks."""
        if not jobs:
            return
        self._handed.extend(jobs)
        self._wake.set()

    async def run(self, child: Child, held: HeldJobs) -> None:
        """Claim and send jobs to ``child`` until the batch is finished
        (then ``Shutdown``), the run is taken over, or ``cancel``.

        Cancellation: may have partially happened; every job claimed is in
        ``held``.

        Raises:
            StoreError: the store refused a step.
            StoreUnavailable: the store was away past the run's deadline.
        """
        # A send to a child that died is not this task's to report: the
        # reader sees the same death as EOF or a broken pipe.
        self._handed = []
        self._returning = []
        self._refilling = True
        try:
            with self._scope, contextlib.suppress(ChildCrashed):
                await self._dispatch(child, held)
        finally:
            self._refilling = False

    async def _dispatch(self, child: Child, held: HeldJobs) -> None:
        while True:
            await self._gate.wait_open()
            await self._limits.throttle.wait()
            if self._handed:
                handed, self._handed = self._handed, []
                await self._send(child, handed, held)
                continue
            if returned := [job for job in self._returning if held.holds(job)]:
                self._returning = [job for job in self._returning if not held.holds(job)]
                await self._send(child, returned, held)
                continue
            credits = await self._take_credits(held)
            if credits is None:
                continue
            if not await self._still_runs_here():
                for credit in credits:
                    held.credits.release_on_behalf_of(credit)
                return
            jobs = await self._claim(held, credits)
            if jobs:
                await self._send(child, jobs, held)
                continue
            if not held and await self._finished():
                await child.channel.send(ipc.Shutdown())
                return
            await self._wait_for_work()

    async def _still_runs_here(self) -> bool:
        """Whether this engine still holds the run, asking the store (and
        renewing the run) when it last did a renewal period ago or more;
        when another engine holds it, the run is stopped."""
        now = trio.current_time()
        lease = self._limits.lease_seconds
        if now - self._owned_at < lease / 3:
            return True
        acquire = partial(self._store.acquire_run, self._batch_id, self._owner, lease)
        runner = await self._store_step(acquire)
        if runner == self._owner:
            self._owned_at = now
            return True
        log.warning(
            "[batch %s] engine %s took the run over: it stops here", self._batch_id, runner
        )
        self._taken_over()
        return False

    async def _store_step(self, step: Callable[[], Awaitable[_T]]) -> _T:
        """``step()`` retried while the store is away; once the run is
        stopped, only until its deadline (then ``StoreUnavailable``)."""
        return await self._retry.call(step, patience=self._patience)

    async def _next_due_at(self) -> float | None:
        return await self._store_step(partial(self._store.next_due_at, self._batch_id))

    async def _take_start(
        self, job: JobRecord, held: HeldJobs, before_waiting: Callable[[], Awaitable[None]]
    ) -> None:
        """The job's start of its type's gate, in the job's name, waiting
        for room (and, for a type's rate, for room in its batch's rate
        first); when its rate was granted is noted on the held job (the
        recorder restamps it)."""
        await self._limits.throttle.wait(before_waiting)
        held_job = held.get(job.job_id)
        gate = self._limits.type_gate(job.type)
        if gate is None:
            return
        starts = self._limits.starts
        if gate.rate is not None and starts is not None:
            await wait_for_batch_room(job, held, starts, self._clock, before_waiting)
        retry, patience = self._retry, self._patience
        if await gate.take_slot(job.job_id, before_waiting, retry=retry, patience=patience):
            held.add_type_slot(job.job_id, gate)
        asked_at = await gate.take_rate(
            job.job_id, job.cost, before_waiting, self._clock, retry=retry, patience=patience
        )
        if asked_at is not None and held_job is not None:
            held_job.type_rate_grant = (gate, asked_at)

    async def _claim(self, held: HeldJobs, credits: Sequence[object]) -> list[JobRecord]:
        claimed = await self._store_step(partial(self._claim_once, len(credits)))
        # A job this run holds already can come back to it in two ways.
        # Its outcome made it due again at once (a retry with no backoff, a
        # release) and the store took that outcome, but the recorder has not
        # let go of it yet: it is held anew once the recorder does, and sent
        # then (``_returning``). Or its lease lapsed while the child ran it
        # (renewals failed), it was recovered to pending, and this claim took
        # it again: it still runs here, so it is neither held twice nor sent
        # to the child again.
        jobs: list[JobRecord] = []
        returning: list[JobRecord] = []
        for job in claimed:
            current = held.get(job.job_id)
            if current is None:
                jobs.append(job)
            elif current.outcome is not None:
                returning.append(job)
        if skipped := len(claimed) - len(jobs) - len(returning):
            log.warning(
                "[batch %s] %d jobs still running here came back to this run: not sent again",
                self._batch_id,
                skipped,
            )
        spare = iter(credits)
        for job, credit in zip(jobs, spare, strict=False):
            held.add(job, credit)
        for job, credit in zip(returning, spare, strict=False):
            held.add_after(job, credit)
        self._returning.extend(returning)
        for credit in spare:
            held.credits.release_on_behalf_of(credit)
        return jobs

    async def _claim_once(self, limit: int) -> list[JobRecord]:
        # Shielded: once the store hands jobs out they must be held, or a
        # cancellation here would strand them as active until their lease
        # expires.
        with trio.move_on_after(CLEANUP_SECONDS, shield=True):
            return await self._store.claim_jobs(
                self._batch_id, limit, owner=self._owner, lease_seconds=self._limits.lease_seconds
            )
        raise StoreUnavailable("the store did not hand out jobs in time")

    async def _send(self, child: Child, jobs: list[JobRecord], held: HeldJobs) -> None:
        ready: list[JobRecord] = []
        timeout_of = self._limits.timeout_of

        async def send_ready() -> None:
            if ready:
                # Plain objects, not ``ipc.JobToRun``: the store checked these values.
                objects = [
                    job_object(j.job_id, j.type, j.payload, j.attempts, timeout_of(j), j.cost)
                    for j in ready
                ]
                held.note_sent(ready)
                ready.clear()
                await child.channel.send_run_jobs(objects)

        # Jobs of types without a gate go first and have nothing to take
        # (the batch's rate is the child's): unless a hold is on (one only
        # starts while this task waits), the send is their one checkpoint.
        limits, gate_of = self._limits, self._limits.type_gate
        gated: list[JobRecord] = []
        for job in jobs:
            (ready if gate_of(job.type) is None else gated).append(job)
        if ready and limits.throttle.held():
            gated[:0] = ready
            ready.clear()
        for job in gated:
            await self._take_start(job, held, send_ready)
            ready.append(job)
        await send_ready()

    async def _finished(self) -> bool:
        if await self._next_due_at() is not None:
            return False
        counts = await self._store_step(partial(self._store.counts, self._batch_id))
        return counts.active == 0

    async def _wait_for_work(self) -> None:
        due = await self._next_due_at()
        delay = self._limits.lease_seconds / 2 if due is None else max(0.0, due - self._clock())
        with trio.move_on_after(delay):
            await self._wake.wait()
        self._wake = trio.Event()

    async def _take_credits(self, held: HeldJobs) -> list[object] | None:
        """At least one credit (waiting for it), plus what else is free now,
        up to ``batch_size``; each is borrowed on behalf of a fresh token.
        None (holding none) when none was free: it waited to be woken (jobs
        ended or handed), and the caller looks again."""
        credits, first = held.credits, object()
        try:
            credits.acquire_on_behalf_of_nowait(first)
        except trio.WouldBlock:
            # Credits come back when the recorder ends held jobs, and the
            # runner wakes the dispatcher then, as ``hand`` does.
            await self._wake.wait()
            self._wake = trio.Event()
            return None
        return _more_credits(credits, first, self._limits.batch_size)


def _more_credits(credits: trio.CapacityLimiter, first: object, most: int) -> list[object]:
    """``first``'s credit plus what else is free now, up to ``most``."""
    taken = [first]
    while len(taken) < most:
        token = object()
        try:
            credits.acquire_on_behalf_of_nowait(token)
        except trio.WouldBlock:
            break
        taken.append(token)
    return taken
