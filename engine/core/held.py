"""The jobs a run holds: every job it claimed and has not finished.

Design notes
------------
Each job in ``HeldJobs`` holds one of the run's concurrency credits (and,
for a type with a concurrency limit of its own, a slot of its
``TypeGate``) until ``pop`` gives them back. Nothing claimed is ever
outside it, so whatever is left when a child exits can be released. A
type's slots live in the store, so ``pop`` only notes them; the recorder
frees them (``free_type_slots``) once the outcomes that ended their jobs
are recorded and published, in one store call per type.

A job also remembers when its type's rate let it start (the engine's wall
clock): when the child reports the real start, ``restamp`` moves that take
later by the difference (``engine.core.limits``), in the store, with
``move_type_starts``, one store call per type and burst; and the start is
noted among the run's recent starts under its batch's rate limit, which
the next child of the run is handed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

import attrs
import trio

from engine.core.limits import RecentStarts
from engine.core.retry import Patience, StoreRetry
from engine.core.type_gate import TypeGate
from engine.store.records import JobRecord, Outcome

__all__ = ["CLEANUP_SECONDS", "HeldJob", "HeldJobs"]

#: How long a store write may take once the run is being torn down by a
#: cancellation; the store answers in milliseconds, so this only bounds a
#: store that stopped answering.
CLEANUP_SECONDS = 10.0


@attrs.define
class HeldJob:
    """A claimed job: its record, its credit, the type gate it holds a slot
    of, the type gate whose rate granted its start (with the wall-clock
    time of the grant), whether it was sent to the child and when the child
    started it, and the outcome the child reported (and when) while the
    store has not taken it yet."""

    record: JobRecord
    #: None once a job claimed in its place took it over (``add_in_place_of``).
    credit: object | None
    active_since: float | None = None
    #: Handed to the child (``note_sent``): it may start from then on.
    sent: bool = False
    type_gate: TypeGate | None = None
    type_rate_grant: tuple[TypeGate, float] | None = None
    outcome: Outcome | None = None
    finished_at: float | None = None
    #: What the job is being stopped as (cancel, timeout): written instead
    #: of an interruption the child reports, or when its child is replaced.
    ended_by: Outcome | None = None


class HeldJobs:
    """The jobs a run holds, each with a credit of ``credits`` borrowed on
    behalf of its ``credit`` token. Type slots are freed through ``retry``
    with the run's ``patience`` when given (a short outage is waited out),
    else in one attempt. Starts are noted in ``starts``, the run's under its
    batch's rate limit, when it has one."""

    def __init__(
        self,
        credits: trio.CapacityLimiter,
        *,
        retry: StoreRetry | None = None,
        patience: Patience | None = None,
        starts: RecentStarts | None = None,
    ) -> None:
        self.credits = credits
        self._starts = starts
        self._retry, self._patience = retry, patience
        self._jobs: dict[str, HeldJob] = {}
        self._slots_to_free: dict[TypeGate, list[str]] = defaultdict(list)
        self._starts_to_move: dict[TypeGate, dict[str, float]] = defaultdict(dict)
        # Job id -> the claim of it that is held once the job, still held
        # under that id, is popped (see ``add_in_place_of``).
        self._successors: dict[str, tuple[JobRecord, object]] = {}

    def add(self, record: JobRecord, credit: object) -> HeldJob:
        """Hold a claimed job with a credit already borrowed for it."""
        held = self._jobs[record.job_id] = HeldJob(record=record, credit=credit)
        return held

    def add_in_place_of(self, record: JobRecord, finished: str) -> None:
        """Hold a job claimed in the store step that recorded the outcome of
        the held job ``finished``, on ``finished``'s credit (its ``pop``
        then gives back none). A claim of a job still held (``finished``
        itself or another whose outcome the step recorded: a release or a
        retry due at once) is held once that job is popped."""
        old = self._jobs[finished]
        credit, old.credit = old.credit, None
        if record.job_id in self._jobs:
            self._successors[record.job_id] = (record, credit)
        else:
            self._jobs[record.job_id] = HeldJob(record=record, credit=credit)

    def add_after(self, record: JobRecord, credit: object) -> None:
        """Hold a job that a claim took back while this run still holds it
        with an outcome being recorded (the outcome made it due again at
        once: a retry with no backoff, a release), on ``credit``: it is
        held once the held one is popped (``holds`` tells when)."""
        self._successors[record.job_id] = (record, credit)

    def holds(self, record: JobRecord) -> bool:
        """Whether this very claim of a job is held (a job held by
        ``add_after`` or ``add_in_place_of`` is, once its predecessor is
        popped)."""
        held = self._jobs.get(record.job_id)
        return held is not None and held.record is record

    def add_type_slot(self, job_id: str, gate: TypeGate) -> None:
        """The job also holds a slot of ``gate`` (its type's), in its id's name."""
        self._jobs[job_id].type_gate = gate

    def note_sent(self, records: Iterable[JobRecord]) -> None:
        """These held jobs were handed to the child: each may start from now on."""
        for record in records:
            if (job := self._jobs.get(record.job_id)) is not None:
                job.sent = True

    def restamp(self, job: HeldJob, started_at: float) -> None:
        """The child started ``job`` at ``started_at`` (wall clock): it is
        noted among the run's recent starts, and its type rate's take is to
        be moved there (``move_type_starts``; only ever later, and once)."""
        if self._starts is not None:
            self._starts.note(started_at, job.record.cost)
        if job.type_rate_grant is not None:
            gate, granted_at = job.type_rate_grant
            if started_at > granted_at:
                self._starts_to_move[gate][job.record.job_id] = started_at - granted_at
        job.type_rate_grant = None

    async def move_type_starts(self) -> None:
        """Move the type rates' takes ``restamp`` noted, one store call per type.

        Cancellation: shielded (bounded); a take not moved counts from its
        hand-off.
        """
        if not self._starts_to_move:
            return
        with trio.move_on_after(CLEANUP_SECONDS, shield=True):
            while self._starts_to_move:
                gate, delays = self._starts_to_move.popitem()
                await gate.delay_rate(delays)

    def get(self, job_id: str) -> HeldJob | None:
        return self._jobs.get(job_id)

    def pop(self, job_id: str) -> HeldJob:
        """Stop holding the job; its credit goes back (unless a job claimed
        in its place took it), and its type slot is to be freed
        (``free_type_slots``)."""
        held = self._jobs.pop(job_id)
        if held.credit is not None:
            self.credits.release_on_behalf_of(held.credit)
        if held.type_gate is not None:
            self._slots_to_free[held.type_gate].append(job_id)
        successor = self._successors.pop(job_id, None)
        if successor is not None:
            self.add(*successor)
        return held

    async def free_type_slots(self, *, of_every_job: bool = False) -> None:
        """Free the type slots of the jobs popped so far (and, with
        ``of_every_job``, of those still held too), one store call per type.

        Cancellation: shielded (bounded: a store away for longer is not
        waited for); a slot not freed comes back when its lease runs out.
        """
        if of_every_job:
            for job in self._jobs.values():
                if job.type_gate is not None:
                    self._slots_to_free[job.type_gate].append(job.record.job_id)
                    job.type_gate = None
        if not self._slots_to_free:
            return
        with trio.move_on_after(CLEANUP_SECONDS, shield=True):
            while self._slots_to_free:
                gate, holders = self._slots_to_free.popitem()
                await gate.release(holders, retry=self._retry, patience=self._patience)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[HeldJob]:
        return iter(list(self._jobs.values()))
