"""Recording a run: what a child reports becomes store outcomes and events.

Design notes
------------
``Recorder.record`` takes one burst of child messages (what one read of the
pipe brought), writes their outcomes in one store transaction, then
publishes their events in the order the child sent them, so a subscriber
never sees a job start before the job it replaced finished. Which message
becomes which event is written down in ``protocols.events``; the data is
built here, from the engine's view (the ``Tally``, the state the store
took); ``engine.core.outcomes`` says which outcome a report becomes, and
``engine.core.announce`` what a recorded burst publishes. A job back to
pending for a retry gets ``job:retrying``; its one terminal
``job:progress`` comes when it finally completes or fails.

A job is timed (its terminal event's ``duration_ms``) from the reading
of the burst that reported its start to that of the burst that reported
its end: one clock reading per burst, so a job that started and ended
within one burst took no time the engine could see.

A job's start (``JobStarted``) also moves its type rate's take to the
moment its handler started and notes it among the run's recent starts
(``HeldJobs.restamp``), before the burst's outcomes are written, so the
next grants, and the next child, see it soon.

Batch-wide counts for ``processing:progress`` are kept from outcomes
(``engine.core.tally``: no store query) and published at most once per
burst (at its end, however many ``Progress`` reports it held), and once
more when ``release`` moved them, so the latest counts precede ``done``;
their ``eta_seconds`` comes from the run's ``EtaEstimator``.

While the store is away, the outcomes a child reported stay with their
``HeldJob`` (``outcome``) and the store write is retried (``StoreRetry``)
until the store takes them; once the run is stopped, only until its
deadline, and then ``release`` writes those kept outcomes instead of
putting the jobs back. The burst's other events (``processing:started``, a
job's ``active`` updates) are published all the same; the kept outcomes
are announced by ``release`` once written. Either way a job's terminal
event is published when it leaves ``HeldJobs``, so exactly once.

The store records an outcome only for a job still active under this
engine's lease, and skips the others. A skip means one of two things:
- No attempt to write the outcome failed before: the job is not this
  engine's any more. Its lease ran out (the engine was cut off from the
  store), it was recovered, and maybe another engine runs it now. It
  leaves ``HeldJobs`` (its credit and type slot go back) with no terminal
  event from here (logged): the engine that holds it now announces it.
- An earlier attempt at writing this very outcome failed (this call's, or
  for a kept outcome, ``record``'s before ``release``): that attempt may
  have written it and lost only its reply (Redis), which leaves the job
  no longer active. The recorder takes the state the outcome leads to as
  the state the store took and announces it. The store cannot tell this
  apart from a lease lost during the same outage; a lost reply is the
  likely one, as the outage is short next to a lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import attrs
import trio

from engine.core.announce import announce_outcome, publish_burst
from engine.core.bus import EventBus
from engine.core.eta import EtaEstimator
from engine.core.follow_ups import FollowUpRecorder, FollowUpRules
from engine.core.held import CLEANUP_SECONDS, HeldJob, HeldJobs
from engine.core.job_log import job_active, jobs_logged
from engine.core.outcomes import outcome_of, state_after
from engine.core.refill import Refill, hold_refill
from engine.core.retry import Patience, StoreRetry
from engine.core.tally import Tally
from engine.core.throttle import Throttle
from engine.errors import StoreUnavailable
from engine.store.base import Store
from engine.store.records import Counts, Outcome, Release
from protocols import events, ipc
from protocols.lifecycle import JobState

__all__ = ["Recorder", "Tally"]

log = logging.getLogger("batchyard.runner")

#: The reports that end a job's attempt (the usual one first).
_ENDS = (ipc.JobCompleted, ipc.JobFailed, ipc.JobInterrupted, ipc.JobRateLimited)


class Recorder:
    """Writes what a batch's children report and publishes it.

    Args:
        batch_id: the batch.
        store, bus: shared engine services (not owned).
        owner: the engine's lease owner name: only the jobs under its
            leases are recorded.
        backoff_seconds: the base of the exponential backoff between a
            job's attempts.
        clock: wall-clock seconds, the store's clock (when a retry is due).
        retry: how store writes are retried while the store is away.
        patience: the run's: once it is stopped, retries end at its deadline.
        follow_ups: the engine's rules for jobs handlers enqueue; without
            them, a job that enqueues fails.
        throttle: the run's hold on starts, which a handler's
            ``RateLimited`` puts on.
        eta: estimates the run's remaining time (default: no rate limit).
    """

    def __init__(
        self,
        *,
        batch_id: str,
        store: Store,
        owner: str,
        bus: EventBus,
        backoff_seconds: float,
        clock: Callable[[], float],
        retry: StoreRetry,
        patience: Patience,
        follow_ups: FollowUpRules | None = None,
        throttle: Throttle | None = None,
        eta: EtaEstimator | None = None,
    ) -> None:
        self.batch_id = batch_id
        self._throttle = throttle or Throttle()
        self._rate_limited: dict[str, events.RateLimitedJob] = {}
        self._follow_ups = FollowUpRecorder(batch_id=batch_id, store=store, rules=follow_ups)
        self._eta = eta or EtaEstimator(starts_per_second=None)
        self._store = store
        self._owner = owner
        self._bus = bus
        self._clock = clock
        self._retry = retry
        self._patience = patience
        self._tally = Tally()
        self._outcome_of = partial(
            outcome_of, clock=clock, backoff_seconds=backoff_seconds, follow_ups=self._follow_ups
        )

    def start_tally(self, counts: Counts) -> None:
        """Count progress from the batch's stored counts (a run begins)."""
        self._tally = Tally(completed=counts.completed, failed=counts.failed, total=counts.total)
        self._eta.restart(counts.completed + counts.failed)

    def eta_seconds(self) -> float | None:
        """Seconds until the run has finished every job of the batch, as
        far as its rate limit and pace tell; None when unknown."""
        tally = self._tally
        return self._eta.estimate(tally.total - tally.completed - tally.failed)

    def count_added(self, added: int) -> None:
        """``added`` jobs joined the batch: the progress total grows."""
        self._tally.total += added

    def finished_counts(self) -> Counts:
        """The batch's completed and failed jobs as the outcomes recorded
        here count them (for a run that cannot ask the store)."""
        return Counts(completed=self._tally.completed, failed=self._tally.failed)

    async def record(
        self, messages: list[ipc.ChildMessage], held: HeldJobs, refill: Refill | None = None
    ) -> None:
        """Record one burst of child messages in one store write, then
        publish their events in the order the child sent them. With a
        ``refill`` that asks for it, the same write claims the jobs that
        replace the finished ones (``engine.core.refill``). While the
        store is away the write is retried; once the run's patience ran
        out, the burst's outcomes stay held (``release`` writes and
        announces them) and the rest of its events are published.

        Cancellation: each store write is shielded (bounded), so what the
        child reported is never half recorded; cancelled between attempts,
        the outcomes stay held.

        Raises:
            StoreError: the store refused the outcomes.
        """
        outcomes = await self._outcomes(messages, held)
        await self._refuse_follow_ups(outcomes, held)
        await held.move_type_starts()
        states: dict[str, JobState] = {}
        if outcomes:
            try:
                states = await self._apply(list(outcomes.values()), held, refill=refill)
            except StoreUnavailable:
                # Held for ``release``, which announces them once written;
                # the rest of the burst is news now.
                outcomes = {}
        publish_burst(
            messages,
            outcomes,
            states,
            held,
            batch_id=self.batch_id,
            tally=self._tally,
            publish=self._bus.publish,
            rate_limited=self._rate_limited,
        )
        self._publish_progress(self._tally.snapshot(self.batch_id))
        await held.free_type_slots()

    async def _outcomes(
        self, messages: list[ipc.ChildMessage], held: HeldJobs
    ) -> dict[str, Outcome]:
        """The outcomes a burst reports for held jobs, kept on them; starts
        are noted (``HeldJobs.restamp``) and a ``RateLimited``
        puts its hold on. The burst's jobs are timed as of its reading."""
        outcomes: dict[str, Outcome] = {}
        now = trio.current_time()
        logged = jobs_logged()
        # Dispatched on the exact class (messages are never subclassed):
        # this runs for every message of every burst.
        for message in messages:
            if type(message) is ipc.JobStarted:
                job = held.get(message.job_id)
                if job is None:
                    continue
                if job.active_since is None:
                    job.active_since = now
                if logged:
                    job_active(self.batch_id, job.record)
                held.restamp(job, message.started_at)
            elif isinstance(message, _ENDS):
                job = held.get(message.job_id)
                if job is None:
                    continue
                outcome = self._outcome_of(message, job.record)
                if job.ended_by is not None and type(message) is ipc.JobInterrupted:
                    outcome = job.ended_by  # it was stopped on purpose (cancel)
                outcomes[message.job_id] = job.outcome = outcome
                job.finished_at = now
                if type(message) is ipc.JobRateLimited:  # its event goes out later
                    self._rate_limited[message.job_id] = await self._throttle.hold(
                        job.record, message.retry_after, now=self._clock()
                    )
                    now = trio.current_time()
        return outcomes

    async def release(self, held: HeldJobs, *, crashed: bool) -> None:
        """Write the outcomes the child reported and the store did not take
        yet, and put every other held job back: refunded, unless the child
        crashed while it had started the job (then the attempt counts, and a
        job out of attempts fails). Each job written is announced like a
        recorded one (its terminal ``job:progress`` or ``job:retrying``,
        counted in the tally, or the ``job:rate-limited`` of a ``RateLimited``
        report); none was announced before, since a job leaves ``held`` when
        it is. While the store is away the write is
        retried until the run's patience runs out; then the jobs are left
        to come back through their lease (logged).

        Cancellation: may have partially happened; what is not released comes
        back when its lease expires.

        Raises:
            StoreError: the store refused the releases.
        """
        outcomes: list[Outcome] = [
            job.outcome
            or Release(
                job_id=job.record.job_id,
                refund_attempt=not (crashed and job.active_since is not None),
                error="the child process crashed while running this job",
            )
            for job in held
        ]
        # A kept outcome met a failed write already, which may have taken it.
        kept = {job.record.job_id for job in held if job.outcome is not None}
        try:
            states = await self._apply(outcomes, held, tried=kept) if outcomes else {}
        except StoreUnavailable as exc:
            log.error(
                "[batch %s] cannot release %d jobs (%s); they come back to pending"
                " when their lease runs out, and their type slots with it",
                self.batch_id,
                len(held),
                exc,
            )
            for job in held:  # their credits go back all the same
                held.pop(job.record.job_id)
                self._rate_limited.pop(job.record.job_id, None)
            return
        except BaseException:
            # These jobs run no more here, recorded or not: their slots go.
            await held.free_type_slots(of_every_job=True)
            raise
        for outcome in outcomes:
            job = held.pop(outcome.job_id)
            limited = self._rate_limited.pop(outcome.job_id, None)
            if limited is not None and outcome.job_id in states:
                self.publish(limited)  # its burst's write failed: news only now
            else:
                self._announce(outcome, states.get(outcome.job_id), job)
        self._publish_progress(self._tally.latest(self.batch_id))
        await held.free_type_slots()

    def publish(self, data: events.EventData) -> None:
        """Publish one of this batch's events."""
        self._bus.publish(data)

    def _publish_progress(self, progress: events.ProcessingProgress | None) -> None:
        """Publish a progress snapshot with the run's ETA as of its counts."""
        if progress is None:
            return
        self._eta.observe(progress.completed + progress.failed)
        self.publish(attrs.evolve(progress, eta_seconds=self.eta_seconds()))

    async def _apply(
        self,
        outcomes: list[Outcome],
        held: HeldJobs,
        *,
        tried: set[str] | None = None,
        refill: Refill | None = None,
    ) -> dict[str, JobState]:
        """``store.apply`` under this engine's leases, retried while the
        store is away. A skipped outcome that a failed attempt (of this
        call, or for the jobs of ``tried``, of an earlier one) may have
        written is taken as applied; any other skipped outcome is for a job
        no longer this engine's, absent from the states returned (logged).
        When ``refill`` asks for a claim, it is made in the same write and
        what it took is held and handed to ``refill``."""
        maybe_written = set(tried or ())
        claim = None if refill is None else refill.refill_claim(len(outcomes))

        async def write() -> dict[str, JobState]:
            if claim is None or refill is None:
                return await self._store.apply(outcomes, owner=self._owner)
            step = await self._store.apply_and_claim(outcomes, owner=self._owner, claim=claim)
            finishing = [outcome.job_id for outcome in outcomes]
            refill.hand(hold_refill(step.claimed, finishing, held, self.batch_id))
            return step.states

        async def attempt() -> dict[str, JobState]:
            # Shielded: the write either happened or not, never abandoned
            # half-way; the bound only matters for a store that hangs.
            with trio.move_on_after(CLEANUP_SECONDS, shield=True):
                try:
                    return await write()
                except StoreUnavailable:
                    maybe_written.update(outcome.job_id for outcome in outcomes)
                    raise
            maybe_written.update(outcome.job_id for outcome in outcomes)
            raise StoreUnavailable("the store did not record results in time")

        states = await self._retry.call(attempt, patience=self._patience)
        lost = []
        for outcome in outcomes:
            if outcome.job_id in states:
                continue
            job = held.get(outcome.job_id)
            if job is None:
                continue
            if outcome.job_id in maybe_written:
                states[outcome.job_id] = state_after(outcome, job.record)
            else:
                lost.append(outcome.job_id)
        if lost:
            log.warning(
                "[batch %s] %d outcomes not recorded: their jobs are no longer under"
                " this engine's lease (it ran out, and they were recovered), such as %s",
                self.batch_id,
                len(lost),
                ", ".join(lost[:3]),
            )
        self._follow_ups.announce(outcomes, states)
        return states

    async def _refuse_follow_ups(self, outcomes: dict[str, Outcome], held: HeldJobs) -> None:
        """Fail the jobs whose follow-ups name a batch that does not exist."""
        for job_id, error in (await self._follow_ups.refused(outcomes.values())).items():
            job = held.get(job_id)
            if job is not None:
                refusal = ipc.JobFailed(job_id=job_id, error=error)
                outcomes[job_id] = job.outcome = self._outcome_of(refusal, job.record)

    def _announce(self, outcome: Outcome, state: JobState | None, held: HeldJob) -> None:
        announce_outcome(
            outcome, state, held, batch_id=self.batch_id, tally=self._tally, publish=self.publish
        )
