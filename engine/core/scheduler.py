"""The scheduler: creates each schedule's batch at its due times, once in
the whole cluster.

Design notes
------------
One task per schedule (``Scheduler.serve``, in the engine's nursery)
sleeps until the schedule's next due time on the engine's wall clock,
then *claims* that firing in the store (``Store.claim_firing``): of the
engines of the cluster that wake for the same due time, exactly one wins,
and only it creates the batch. The claim is a compare-and-set on the last
due time fired, so a due time never fires twice and never fires after a
later one did (an engine whose clock lags behind the cluster's cannot fire
an old one).

*No replay.* A schedule's first due time is the first one after the
engine opened, and after each firing the next is the first one after the
later of that due time and now: due times that passed while no engine ran,
or while this one was held up, are skipped, not made up. A task that wakes
after several due times passed (the wall clock was set forward while it
slept) fires only the latest of them.

*Sleeping on a wall clock.* The wall clock may be set while the task
sleeps (trio's sleeps are on the monotonic clock), so a sleep lasts at
most ``_LONGEST_SLEEP`` and the clock is read again after it; a firing is
never early, and at most that late after the clock jumps ahead.

*The firing.* The batch is named ``PREFIX-YYYYmmddTHHMM`` after its due
time (``Schedule.batch_id``), holds one job of the schedule's type and
payload (keyed by the batch id), and is created through the engine
(``Engine.create_batch``), with ``autoStart`` when the schedule starts it:
the cluster then starts it on whichever engine has capacity, now or as
soon as one has. Its options also name the schedule (``schedule``).

*Store outages.* A claim or a create that meets ``StoreUnavailable`` is
tried again with a backoff until the schedule's next due time; then the
firing is missed (logged). A create tried again after a partial or lost
one finds its batch there (``BatchExists``) and adds the job, which its
key keeps from being added twice. A draining
engine (``ShuttingDown``) fires nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import trio

from engine.config.schedules import Schedule
from engine.core.values import JobRequest
from engine.errors import BatchExists, ConfigError, ShuttingDown, StoreError, StoreUnavailable
from engine.jobs.registry import JobRegistry
from engine.store import AddResult, Store

__all__ = ["ScheduleStatus", "Scheduler", "SchedulerStatistics", "check_schedule_types"]

log = logging.getLogger("batchyard.schedules")

_T = TypeVar("_T")

#: The longest single sleep before the wall clock is read again: how late a
#: firing may be after the clock was set forward while it slept.
_LONGEST_SLEEP = 30.0
#: The first and the longest pause between tries of a step the store refused.
_FIRST_RETRY = 0.5
_LONGEST_RETRY = 15.0

#: Creates a batch as ``Engine.create_batch`` does.
CreateBatch = Callable[
    [str | None, str, Sequence[JobRequest], dict[str, Any] | None],
    Awaitable[tuple[str, AddResult]],
]
#: Adds jobs to a batch as ``Engine.add_jobs`` does.
AddJobs = Callable[[str, Sequence[JobRequest]], Awaitable[AddResult]]


@attrs.frozen(kw_only=True)
class ScheduleStatus:
    """One schedule as ``GET /api/schedules`` shows it: its next due time
    and the due time of its last firing in the cluster (None before the
    first), epoch seconds."""

    name: str
    cron: str
    type: str
    next_run_at: float | None
    last_run_at: float | None


@attrs.frozen(kw_only=True)
class SchedulerStatistics:
    """What this engine's scheduler did: the firings it won (created their
    batch), lost to another engine, and missed (the store failed)."""

    fired: int
    lost: int
    missed: int


def check_schedule_types(schedules: Mapping[str, Schedule], registry: JobRegistry) -> None:
    """Refuse a schedule whose job type is not registered.

    Raises:
        ConfigError: one line naming the schedule and its type.
    """
    for schedule in schedules.values():
        if schedule.type not in registry:
            raise ConfigError(
                f"[schedules.{schedule.name}] type={schedule.type!r} is not a registered "
                f"job type: expected one of {', '.join(sorted(registry.names()))}"
            )


def _latest_passed(schedule: Schedule, due: float, now: float) -> float:
    """The last due time of ``schedule`` at or before ``now``, from ``due``
    on: the one to fire when the task woke after later ones passed too."""
    while (later := schedule.next_due(due)) is not None and later <= now:
        due = later
    return due


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Scheduler:
    """Fires ``schedules`` for this engine; ``serve`` runs them.

    Args:
        schedules: the schedules, by name.
        store: the cluster's store (not owned): claims and last firings.
        create: creates a firing's batch (``Engine.create_batch``).
        add: adds its job to a batch an earlier try created
            (``Engine.add_jobs``).
        clock: wall-clock seconds, the store's clock.
        draining: whether the engine drains (it then claims nothing more).
    """

    def __init__(
        self,
        schedules: Mapping[str, Schedule],
        *,
        store: Store,
        create: CreateBatch,
        add: AddJobs,
        clock: Callable[[], float],
        draining: Callable[[], bool],
    ) -> None:
        self._schedules = dict(sorted(schedules.items()))
        self._draining = draining
        self._store = store
        self._create = create
        self._add = add
        self._clock = clock
        self._fired = self._lost = self._missed = 0

    async def serve(self) -> None:
        """Fire every schedule at its due times until cancelled, or until
        the engine drains.

        Cancellation: may have partially happened (a firing claimed and
        its batch not created yet is missed).
        """
        async with trio.open_nursery() as nursery:
            for schedule in self._schedules.values():
                nursery.start_soon(self._keep, schedule)

    async def statuses(self) -> list[ScheduleStatus]:
        """Every schedule, by name, with its next due time and its last
        firing anywhere in the cluster.

        Cancellation: atomic: it only reads.

        Raises:
            StoreError: the store did not answer.
        """
        last = await self._store.last_firings() if self._schedules else {}
        now = self._clock()
        return [
            ScheduleStatus(
                name=name,
                cron=schedule.cron,
                type=schedule.type,
                next_run_at=schedule.next_due(now),
                last_run_at=last.get(name),
            )
            for name, schedule in self._schedules.items()
        ]

    def statistics(self) -> SchedulerStatistics:
        """What this engine's scheduler did so far."""
        return SchedulerStatistics(fired=self._fired, lost=self._lost, missed=self._missed)

    async def _keep(self, schedule: Schedule) -> None:
        due = schedule.next_due(self._clock())
        while due is not None:
            await self._sleep_until(due)
            if self._draining():
                return
            due = _latest_passed(schedule, due, self._clock())
            give_up_at = schedule.next_due(due) or due + _LONGEST_RETRY
            try:
                await self._fire(schedule, due, give_up_at)
            except ShuttingDown:
                return
            due = schedule.next_due(max(due, self._clock()))
        log.warning("schedule %s: %r matches no time to come", schedule.name, schedule.cron)

    async def _sleep_until(self, due: float) -> None:
        # A wall-clock deadline: no event marks it, so the clock is read again.
        while (left := due - self._clock()) > 0:  # noqa: ASYNC110
            await trio.sleep(min(left, _LONGEST_SLEEP))

    async def _fire(self, schedule: Schedule, due: float, give_up_at: float) -> None:
        claimed = await self._retrying(
            schedule, due, give_up_at, lambda: self._store.claim_firing(schedule.name, due)
        )
        if claimed is None:
            return
        if not claimed:
            self._lost += 1
            log.debug("schedule %s: due %s fired elsewhere", schedule.name, _utc(due))
            return
        batch_id = schedule.batch_id(due)
        created = await self._retrying(
            schedule, due, give_up_at, lambda: self._create_batch(schedule, batch_id)
        )
        if created is not None:
            self._fired += 1
            log.info(
                "schedule %s fired for %s: batch %s%s",
                schedule.name,
                _utc(due),
                batch_id,
                "" if schedule.start else " (not started)",
            )

    async def _create_batch(self, schedule: Schedule, batch_id: str) -> bool:
        options: dict[str, Any] = {"schedule": schedule.name}
        if schedule.start:
            options["autoStart"] = True
        # The key makes adding the job again (below) a no-op once it is there.
        job = JobRequest(type=schedule.type, payload=schedule.payload, key=batch_id)
        try:
            await self._create(batch_id, schedule.type, [job], options)
        except BatchExists:
            # An earlier try created the batch, and maybe not its job.
            await self._add(batch_id, [job])
        return True

    async def _retrying(
        self,
        schedule: Schedule,
        due: float,
        give_up_at: float,
        step: Callable[[], Awaitable[_T]],
    ) -> _T | None:
        """``step()``, tried again while the store is unavailable, until
        ``give_up_at``; None when it never went through (the firing is
        missed)."""
        pause = _FIRST_RETRY
        while True:
            try:
                return await step()
            except StoreUnavailable as exc:
                if self._clock() + pause >= give_up_at:
                    self._miss(schedule, due, exc)
                    return None
                await trio.sleep(pause)
                pause = min(pause * 2, _LONGEST_RETRY)
            except StoreError as exc:
                self._miss(schedule, due, exc)
                return None

    def _miss(self, schedule: Schedule, due: float, exc: Exception) -> None:
        self._missed += 1
        log.error("schedule %s: the firing due %s is missed: %s", schedule.name, _utc(due), exc)
