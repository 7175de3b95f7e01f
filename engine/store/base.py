"""The store interface: where batches and jobs live.

Design notes
------------
Only the engine talks to the store; children never do. The values it takes
and gives are in ``engine.store.records``. Every backend
(``sqlite`` embedded, ``redis`` distributed) implements ``Store`` exactly, so
the engine cannot tell them apart.

Jobs are handed out under a *lease*: ``claim_jobs`` marks them active, counts
an attempt, and records the owner (one engine) and an expiry. The owner renews
its leases while it runs (``renew_leases``); when an engine dies, another (or
the same one restarted) finds the expired leases with
``recover_expired_leases`` and puts those jobs back to pending *without*
using up an attempt.

What happens to a claimed job is written with ``apply`` as a list of
outcomes in one transaction: completions, failures, retries with a backoff,
and releases (shutdown, cancel, crash), by the owner of their leases only.
Grouping many outcomes into one
write is what lets the SQLite backend keep up with thousands of jobs a
second.

Time in the store is wall-clock seconds (``time.time()``), since leases and
delays are shared across processes and hosts; backends take a ``clock``
callable so tests can drive it.

Limits shared by every engine on the store (``[types.NAME]`` concurrency
and rate): ``take_rate`` keeps a strict sliding window of cost, and
``take_slot`` hands out concurrency slots under a lease that their holder
renews (``renew_slots``) and frees (``release_slots``); a slot whose lease
ran out is free again, so an engine that died does not keep a type's slots.

Ordering: ``claim_jobs`` hands out the highest ``priority`` first, then the
oldest; a job with ``delay_seconds`` is not handed out before it is due.

A cluster (every engine on one store) shares three more things. The
*engine registry*: each engine upserts an ``EngineRecord`` with a time to
live (``heartbeat``), so every engine can list the live ones. *Run
ownership*: a batch runs on at most one engine at a time; the engine that
runs it holds its *run record* (``acquire_run``) under a lease renewed with
its job leases (``renew_leases``). A run record outlives its run when the
run was stopped early: handed over at a graceful shutdown (``release_run``
with ``finished=False``), or left behind by an engine that died (its lease
runs out, or ``recover_engine`` hands it over at once); either way some
engine resumes it. The *queue*: ``startable_batches`` finds batches with due
work that no engine runs, for engines that start work by themselves.
*Schedules*: ``claim_firing`` lets exactly one engine fire each due time
of a schedule, and ``last_firings`` tells when each one last fired.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from engine.store.records import (
    AddResult,
    BatchRecord,
    Claim,
    Counts,
    EngineRecord,
    JobPage,
    JobRecord,
    NewJob,
    Outcome,
    RunRecord,
    Step,
)
from protocols.lifecycle import JobState

__all__ = ["Store"]


class Store(Protocol):
    """Batches and jobs, leases, run ownership, the engine registry and limits.

    Every method may raise ``StoreUnavailable`` when the backend cannot be
    reached; then nothing was written (writes are atomic).
    """

    async def create_batch(
        self, batch_id: str, type: str, options: Mapping[str, Any] | None = None
    ) -> BatchRecord:
        """Create an empty batch.

        Raises:
            BatchExists: the id is taken.
        """
        ...

    async def get_batch(self, batch_id: str) -> BatchRecord:
        """The batch with its counts and its live run owner.

        Raises:
            BatchNotFound: no such batch.
        """
        ...

    async def list_batches(self) -> list[BatchRecord]:
        """Every batch with its counts and live run owner, oldest first (one
        round trip in all)."""
        ...

    async def delete_batch(self, batch_id: str) -> None:
        """Delete the batch, all its jobs and its run record, unless the run
        record has a live owner (an owner whose lease has not expired): the
        check and the delete are one atomic step, so a run acquired at the
        same moment is never deleted from under its engine.

        Raises:
            BatchNotFound: no such batch.
            BatchRunning: the batch runs on an engine; nothing was deleted.
        """
        ...

    async def add_jobs(self, batch_id: str, jobs: Sequence[NewJob]) -> AddResult:
        """Add jobs; one whose ``key`` the batch already holds is counted as a
        duplicate and not added (also within ``jobs`` itself).

        Raises:
            BatchNotFound: no such batch.
        """
        ...

    async def claim_jobs(
        self, batch_id: str, limit: int, *, owner: str, lease_seconds: float
    ) -> list[JobRecord]:
        """Up to ``limit`` due pending jobs, now active under ``owner``'s lease,
        each with one more attempt counted. Two claimers never get the same job.

        A claim that raised may have taken jobs all the same (a Redis reply
        lost): the next claim of the same owner for the same batch on this
        store object hands out first those it took that the owner still
        holds (lease renewed, no attempt counted), so none is left active
        with no run to finish it."""
        ...

    async def next_due_at(self, batch_id: str) -> float | None:
        """When the earliest pending job of the batch becomes due (possibly in
        the past), or None when the batch has no pending job."""
        ...

    async def apply(self, outcomes: Sequence[Outcome], *, owner: str) -> dict[str, JobState]:
        """Record outcomes of jobs active under ``owner``'s lease in one
        transaction.

        Returns:
            The state each job is in afterwards. An outcome for a job that is
            not active under ``owner``'s lease (already recovered, claimed
            again by another owner, deleted) is skipped and absent: an
            engine cut off from the store never writes over the jobs another
            engine took over meanwhile.
        """
        ...

    async def apply_and_claim(
        self, outcomes: Sequence[Outcome], *, owner: str, claim: Claim
    ) -> Step:
        """``apply(outcomes, owner=owner)`` and then
        ``claim_jobs(claim.batch_id, claim.limit, owner=owner,
        lease_seconds=claim.lease_seconds)``, in one transaction (one round
        trip): the hot path's one store step per burst of a run. The claim
        sees what the outcomes did (a job released by them may be claimed
        again at once).

        A call that raised may have done both: its claim counts as a claim
        that raised for ``claim_jobs``'s rule (the owner's next claim of the
        batch, through either method, hands its jobs out first), and its
        outcomes as possibly recorded.
        """
        ...

    async def counts(self, batch_id: str) -> Counts:
        """Jobs per state. Raises ``BatchNotFound``."""
        ...

    async def queue_length(self) -> int:
        """Pending jobs across all batches."""
        ...

    async def counts_by_type(self) -> dict[str, Counts]:
        """Jobs per state for each job type (the job's own type, whatever
        its batch's), across all batches; a type with no job is absent.
        Kept as jobs change state, so it never scans jobs."""
        ...

    async def list_jobs(
        self,
        batch_id: str,
        *,
        state: JobState | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobPage:
        """Jobs in insertion order, ``limit`` at a time, resuming after
        ``cursor`` (an opaque string from the previous page).

        Raises:
            BatchNotFound: no such batch.
            ValueError: the cursor is not one this store gave out.
        """
        ...

    async def retry_failed(self, batch_id: str) -> int:
        """Failed jobs back to pending with their attempts reset; how many.

        Raises:
            BatchNotFound: no such batch.
        """
        ...

    async def get_job(self, job_id: str) -> JobRecord:
        """The job as stored. Raises ``JobNotFound``."""
        ...

    async def cancel_job(self, job_id: str, error: str = "cancelled") -> JobState:
        """A pending job becomes failed with ``error`` (its ``finished_at``
        now); an active one is asked of the engine holding its lease
        (``take_cancel_requests``); a job in any other state is left as it
        is. One atomic step.

        Returns:
            The state the job was in: ``pending`` means it is failed now;
            for ``active`` the engine holding it must stop it.

        Raises:
            JobNotFound: no such job.
        """
        ...

    async def take_cancel_requests(self, owner: str) -> list[str]:
        """The ids of the jobs active under ``owner``'s lease whose cancel
        was asked since the last call; each ask is handed out once."""
        ...

    async def retry_job(self, job_id: str) -> bool:
        """A failed job back to pending, due now, with its attempts, error
        and result reset; whether it was failed. Raises ``JobNotFound``."""
        ...

    async def record_progress(self, progress: Mapping[str, float], *, owner: str) -> None:
        """Note each job's last reported percentage (``JobRecord.progress``),
        for the jobs active under ``owner``'s lease; the others are skipped.
        A claim clears it."""
        ...

    async def renew_leases(self, owner: str, lease_seconds: float) -> int:
        """Push the expiry of every job lease and run record ``owner`` holds
        to now + lease_seconds, in one step; how many job leases."""
        ...

    async def recover_expired_leases(self) -> int:
        """Active jobs whose lease has expired back to pending, refunding the
        attempt (their engine died; the job did not fail). How many."""
        ...

    async def heartbeat(self, record: EngineRecord, ttl_seconds: float) -> EngineRecord:
        """Register the engine (replacing its earlier record), seen now and
        live for ``ttl_seconds``; the record as stored."""
        ...

    async def engines(self) -> list[EngineRecord]:
        """Every registered engine, live or not, by engine id."""
        ...

    async def forget_engine(self, engine_id: str) -> None:
        """Unregister the engine; an unknown one is left alone."""
        ...

    async def acquire_run(self, batch_id: str, owner: str, lease_seconds: float) -> str:
        """Make ``owner`` the batch's runner, for ``lease_seconds``, unless
        another owner's lease on it has not expired; atomic.

        Returns:
            The owner afterwards: ``owner`` when it took the run (free,
            handed over, expired) or held it already (its lease renewed),
            else the engine holding it.

        Raises:
            BatchNotFound: no such batch.
        """
        ...

    async def release_run(self, batch_id: str, owner: str, *, finished: bool) -> bool:
        """If ``owner`` holds the batch's run record (expired or not):
        ``finished``, forget it (the run ended for good); else hand it over
        (owner None), so any engine may resume it at once. Whether it did."""
        ...

    async def runs(self) -> list[RunRecord]:
        """Every remembered run, by batch id, whoever holds it."""
        ...

    async def recover_engine(self, owner: str) -> int:
        """Take back at once what a dead engine held: its active jobs back to
        pending with the attempt refunded, its run records handed over; one
        step. How many jobs."""
        ...

    async def startable_batches(self, limit: int, *, any_batch: bool) -> list[BatchRecord]:
        """Up to ``limit`` batches that have a due pending job and no live run
        owner, oldest first; unless ``any_batch``, only those that start by
        themselves (``starts_by_itself``). Never a scan of jobs."""
        ...

    async def take_rate(
        self, key: str, limit: float, per_seconds: float, cost: float, *, holder: str | None = None
    ) -> float:
        """Take ``cost`` from the sliding window ``key``, shared by every
        engine on the store, if the cost taken in the last ``per_seconds``
        plus ``cost`` stays within ``limit``; else take nothing. Never a
        fixed window: no half-open window of ``per_seconds`` ever holds more
        than ``limit``. One atomic step; each backend names its clock. A
        take with a ``holder`` (a job id) carries its name, so
        ``delay_rate`` can move it later; only the holder's latest take
        does.

        Returns:
            0.0 when taken; else the seconds until ``cost`` would fit.

        Raises:
            ValueError: an argument is not positive and finite, or ``cost``
                exceeds ``limit`` (it could never fit).
        """
        ...

    async def delay_rate(self, key: str, delays: Mapping[str, float]) -> None:
        """Move the latest take of each holder in ``delays`` later in the
        window ``key`` by that many seconds, in one atomic step: it then
        counts from the moment its job really started, so later takes wait
        for it that much longer. A delay, not a time, so the window stays
        on its backend's clock. A take that left the window (or never was
        named) and a delay that is not positive change nothing."""
        ...

    async def hold_rate(self, key: str, limit: float, per_seconds: float, seconds: float) -> None:
        """Fill the sliding window ``key`` (of ``limit`` per ``per_seconds``)
        for ``seconds`` from now on its backend's clock: no take succeeds
        before then, whatever its cost, and ``take_rate`` answers the wait.
        The hold is a take of the whole ``limit``, placed so that it leaves
        the window ``seconds`` from now; a longer hold already there stays.
        One atomic step; ``seconds`` not positive changes nothing.

        Raises:
            ValueError: ``limit`` or ``per_seconds`` is not positive and finite.
        """
        ...

    async def take_slot(self, key: str, holder: str, limit: int, lease_seconds: float) -> bool:
        """Take one of the ``limit`` slots of ``key`` for ``holder``, leased
        for ``lease_seconds``. Slots whose lease ran out are freed first, so
        a dead engine's slots come back; a holder that holds one keeps it
        (its lease renewed).

        Returns:
            Whether ``holder`` holds a slot now.

        Raises:
            ValueError: ``limit`` below 1, or a lease that is not positive.
        """
        ...

    async def release_slots(self, key: str, holders: Sequence[str]) -> None:
        """Free the slots of ``key`` that ``holders`` hold."""
        ...

    async def renew_slots(self, key: str, holders: Sequence[str], lease_seconds: float) -> int:
        """Renew the leases of the slots of ``key`` that ``holders`` still
        hold (an expired one stays lost); how many."""
        ...

    async def claim_firing(self, name: str, due_at: float) -> bool:
        """Claim the firing of schedule ``name`` due at ``due_at`` (epoch
        seconds) for the caller: it succeeds, in one atomic step, only when
        ``due_at`` is later than every firing of ``name`` claimed before on
        the store, and records it as the schedule's last firing. So of the
        engines that claim one due time, exactly one succeeds, and a due
        time earlier than one already fired never fires.

        Returns:
            Whether the caller fires it.
        """
        ...

    async def last_firings(self) -> dict[str, float]:
        """The due time of the last firing claimed of each schedule, by name
        (a schedule never fired is absent)."""
        ...

    async def ping(self) -> None:
        """Raises ``StoreUnavailable`` unless the backend answers."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads. Idempotent."""
        ...
