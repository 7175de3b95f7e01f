"""Watching one child of a run: its resources, its job count, and the jobs
it must stop (cancel, timeout).

Design notes
------------
A run's child is replaced, without an ``error`` event and without using a
``BATCH_RETRIES`` restart, in two ways (``ChildWatch`` decides which, the
runner carries it out):

* **recycle**: the child ran ``max_jobs`` jobs, or its RSS passed
  ``max_rss_bytes``. The run stops feeding it and sends ``Shutdown``: it
  finishes what it runs, hands back what it only queued (refunded), exits
  0, and the run goes on in a fresh (warm) child.
* **replace**: a job it holds must stop and did not within the grace: a
  cancelled job (``cancel``) ``grace`` seconds after the ask, a job with a
  time limit ``grace`` seconds after the child should have timed it out
  itself (a handler that blocks the child's loop hears neither). The child
  is killed at once; the job is written as what stopped it (failed
  ``cancelled``, or ``timed out after Ns`` retried while attempts remain,
  the attempt counted) and every other job it held goes back to pending
  with its attempt refunded.

A child whose event loop is blocked says nothing at all: past
``silence_seconds`` of it, not answering a ``Ping`` either
(``engine.core.silence``), it is killed and ``silenced`` says why; the run
takes that for a crash (``error``, its jobs released as after a crash, a
``BATCH_RETRIES`` restart used).

A cancelled job is noted on its ``HeldJob`` (``ended_by``) at once, so an
interruption the child reports afterwards is written as ``cancelled``; a
job whose child is replaced for it gets its ``outcome`` set, which the
release of the replaced child writes.

The child's RSS and CPU time are read with psutil every
``SAMPLE_SECONDS``; ``statistics`` is what ``GET /api/batches/{id}``
(``child``) and ``/metrics`` show. All timing is on ``trio.current_time``,
so the mock clock drives it in tests (with a fake ``sample``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

import attrs
import psutil
import trio

from engine.core.held import HeldJob, HeldJobs
from engine.core.silence import SilenceCheck
from engine.errors import ChildCrashed
from engine.store.records import Fail, Outcome
from protocols import ipc

if TYPE_CHECKING:
    from engine.core.run_limits import RunLimits
    from engine.supervisor.children import Child

__all__ = ["SAMPLE_SECONDS", "ChildStats", "ChildWatch", "Usage", "read_usage", "watch_child"]

#: How often a child's RSS and CPU time are read: a psutil read costs tens
#: of microseconds, and memory that grows over a second is caught the next.
SAMPLE_SECONDS = 1.0


@attrs.frozen(kw_only=True)
class Usage:
    """What the OS says a process uses."""

    rss_bytes: int
    cpu_seconds: float


@attrs.frozen(kw_only=True)
class ChildStats:
    """One running batch's child, as ``child`` of the batch view shows it."""

    pid: int
    rss_bytes: int
    cpu_seconds: float
    jobs_run: int


def read_usage(pid: int) -> Usage | None:
    """The process's RSS and CPU seconds (user + system), None once it is gone."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            times = process.cpu_times()
            return Usage(
                rss_bytes=process.memory_info().rss, cpu_seconds=times.user + times.system
            )
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


class ChildWatch:
    """Watches one child of a run; ``run`` in the run's nursery while the
    child lives.

    Args:
        pid: the child's process id.
        held: the jobs the run holds in this child.
        grace_seconds: how long a job asked to stop may take before its
            child is replaced.
        max_jobs: jobs after which the child is recycled; 0: never.
        max_rss_bytes: RSS past which the child is recycled; 0: never.
        timeout_of: a held job's time limit in seconds, None for none.
        retry_at: when a timed-out job runs again (wall clock), None when it
            used its last attempt.
        recycle: stop feeding the child and let it finish (never raising;
            awaited once, from ``run``).
        replace: kill the child now (quick, never raising).
        ask: send the child a message (never raising).
        sample: how a process's usage is read.
        silence_seconds: how long the child may say nothing before it is
            taken for crashed; 0: never.
        waiting_since: since when the run waits for the child's next
            message (trio time), None while it does not wait.
    """

    def __init__(
        self,
        *,
        pid: int,
        held: HeldJobs,
        grace_seconds: float,
        max_jobs: int,
        max_rss_bytes: int,
        timeout_of: Callable[[HeldJob], float | None],
        retry_at: Callable[[HeldJob], float | None],
        recycle: Callable[[], Awaitable[None]],
        replace: Callable[[], None],
        ask: Callable[[ipc.ParentMessage], Awaitable[None]],
        sample: Callable[[int], Usage | None] = read_usage,
        silence_seconds: float = 0.0,
        waiting_since: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.pid = pid
        self._held = held
        self._grace = grace_seconds
        self._max_jobs = max_jobs
        self._max_rss = max_rss_bytes
        self._timeout_of = timeout_of
        self._retry_at = retry_at
        self._recycle = recycle
        self._replace = replace
        self._ask = ask
        self._sample = sample
        self.jobs_run = 0
        self.usage = Usage(rss_bytes=0, cpu_seconds=0.0)
        self.recycling = False
        self._recycle_asked = False
        self.replaced = False
        self._deadlines: dict[str, tuple[float, Outcome]] = {}
        self._asks: list[str] = []
        self._changed = trio.Event()
        self._silence = SilenceCheck(limit_seconds=silence_seconds, waiting_since=waiting_since)

    @property
    def silenced(self) -> str | None:
        """Why the child was killed for its silence; None when it was not."""
        return self._silence.verdict

    def statistics(self) -> ChildStats:
        """The child's pid, last read RSS and CPU time, and jobs started."""
        return ChildStats(
            pid=self.pid,
            rss_bytes=self.usage.rss_bytes,
            cpu_seconds=self.usage.cpu_seconds,
            jobs_run=self.jobs_run,
        )

    def observe(self, messages: Iterable[ipc.ChildMessage]) -> None:
        """Count the starts among a burst of child reports and time the
        started jobs that have a limit; call before the burst is recorded."""
        for message in messages:
            if not isinstance(message, ipc.JobStarted):
                continue
            job = self._held.get(message.job_id)
            if job is None or job.active_since is not None:
                continue
            self.jobs_run += 1
            if job.ended_by is not None:  # cancelled before it started
                self._kill_after_grace(message.job_id, job.ended_by)
                self._asks.append(message.job_id)
                self._changed.set()
            timeout = self._timeout_of(job)
            if timeout is not None and message.job_id not in self._deadlines:
                limit = f"timed out after {timeout:g}s"
                outcome = Fail(job_id=message.job_id, error=limit, retry_at=self._retry_at(job))
                deadline = trio.current_time() + timeout + self._grace
                self._deadlines[message.job_id] = (deadline, outcome)
                self._changed.set()
        if self._max_jobs and self.jobs_run >= self._max_jobs:
            self._start_recycling()

    def cancel(self, job_id: str) -> bool:
        """The job is to stop as ``cancelled``: the child is asked (by
        ``run``) and replaced if its handler still runs after the grace. A
        job not started yet is asked again when it starts. Whether the job
        is held here."""
        job = self._held.get(job_id)
        if job is None:
            return False
        if job.ended_by is not None:  # asked already (a second ask through the store)
            return True
        job.ended_by = Fail(job_id=job_id, error="cancelled")
        if job.active_since is not None:
            self._kill_after_grace(job_id, job.ended_by)
        self._asks.append(job_id)
        self._changed.set()
        return True

    def _kill_after_grace(self, job_id: str, outcome: Outcome) -> None:
        deadline = trio.current_time() + self._grace
        if job_id in self._deadlines:
            deadline = min(deadline, self._deadlines[job_id][0])
        self._deadlines[job_id] = (deadline, outcome)

    async def run(self) -> None:
        """Sample the child, enforce the deadlines and recycle the child
        when it reaches a limit, until cancelled or the child is replaced.

        Cancellation: may have partially happened (a recycle asked, not sent).
        """
        next_sample = trio.current_time()
        while not self.replaced:
            now = trio.current_time()
            if now >= next_sample:
                self._take_sample()
                next_sample = now + SAMPLE_SECONDS
            self._enforce(now)
            if not self.replaced and await self._check_silence(now):
                return
            while self._asks:
                await self._ask(ipc.CancelJob(job_id=self._asks.pop(0)))
            if self.recycling and not self._recycle_asked:
                self._recycle_asked = True
                await self._recycle()
            deadlines = (at for at, _ in self._deadlines.values())
            wake_at = min([next_sample, self._silence.wake_at(), *deadlines])
            with trio.move_on_at(wake_at):
                await self._changed.wait()
            self._changed = trio.Event()

    async def _check_silence(self, now: float) -> bool:
        """Ping a quiet child; kill a silent one (whether it was killed).
        The ping waits for room in the pipe until the silence deadline at
        most: a child that does not even read it by then is silent too."""
        if self._silence.check(now):
            with trio.move_on_at(self._silence.deadline()) as waited:
                await self._ask(ipc.Ping())
            if waited.cancelled_caught:
                self._silence.condemn()
        if self._silence.verdict is None:
            return False
        self._replace()
        return True

    def _take_sample(self) -> None:
        usage = self._sample(self.pid)
        if usage is None:
            return
        self.usage = usage
        # A child recycled before it ran a job would be replaced by another
        # as big, for ever: each child runs at least one.
        if self._max_rss and usage.rss_bytes > self._max_rss and self.jobs_run > 0:
            self._start_recycling()

    def _enforce(self, now: float) -> None:
        for job_id, (deadline, outcome) in list(self._deadlines.items()):
            job = self._held.get(job_id)
            if job is None or job.outcome is not None:
                del self._deadlines[job_id]  # it ended by itself
            elif deadline <= now:
                job.outcome = outcome
                self.replaced = True
        if self.replaced:
            self._replace()

    def _start_recycling(self) -> None:
        self.recycling = True
        self._changed.set()


def watch_child(
    child: Child,
    held: HeldJobs,
    limits: RunLimits,
    clock: Callable[[], float],
    *,
    stop_feeding: Callable[[], None],
) -> ChildWatch:
    """A watch of ``child`` under a run's ``limits``: recycling stops the
    run feeding it (``stop_feeding``) and sends it ``Shutdown``; replacing
    kills it; a timed-out job's next attempt is due after the run's backoff
    (``clock``: the store's wall clock)."""

    def retry_at(job: HeldJob) -> float | None:
        attempts = job.record.attempts
        if attempts >= job.record.max_attempts:
            return None
        backoff: float = limits.backoff_seconds * 2 ** (attempts - 1)
        return clock() + backoff

    async def ask(message: ipc.ParentMessage) -> None:
        with contextlib.suppress(ChildCrashed):
            await child.channel.send(message)

    async def recycle() -> None:
        stop_feeding()
        await ask(ipc.Shutdown())

    return ChildWatch(
        pid=0 if child.process is None else child.process.pid,
        held=held,
        grace_seconds=limits.grace_seconds,
        max_jobs=limits.max_jobs_per_child,
        max_rss_bytes=limits.max_child_rss_bytes,
        timeout_of=lambda job: limits.timeout_of(job.record),
        retry_at=retry_at,
        recycle=recycle,
        replace=child.kill,
        ask=ask,
        silence_seconds=limits.silence_seconds,
        waiting_since=lambda: child.channel.waiting_since,
    )
