"""The recorder through an outage its run's patience did not outlast, on
trio's MockClock: outcomes kept and written at release are announced once
each, and the rest of a burst is published when its outcomes are kept."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import attrs
import trio
from trio.testing import MockClock

from engine.core.bus import EventBus
from engine.core.held import HeldJobs
from engine.core.recorder import Recorder
from engine.core.retry import Patience, StoreRetry
from engine.errors import StoreUnavailable
from engine.store.records import Complete, Counts, NewJob, Outcome
from engine.testing import FailingStore, open_fake_store, trio_wall_clock
from protocols import events, ipc
from protocols.lifecycle import JobState

_OWNER = "engine-1"


@attrs.frozen(kw_only=True)
class _Run:
    """A recorder holding the claimed jobs of a batch, and what it publishes."""

    recorder: Recorder
    held: HeldJobs
    store: FailingStore
    patience: Patience
    job_ids: list[str]
    published: list[events.EventData]

    async def record(self, *messages: ipc.ChildMessage) -> None:
        await self.recorder.record(list(messages), self.held)

    def terminal(self) -> list[tuple[str, JobState]]:
        return [
            (e.job_id, e.status)
            for e in self.published
            if isinstance(e, events.JobUpdate) and e.status is not JobState.ACTIVE
        ]


class _LostReplies(FailingStore):
    """A store that applies outcomes but, while ``losing``, loses the reply,
    as a connection dropped after a script ran would."""

    losing = False

    async def apply(self, outcomes: Sequence[Outcome], *, owner: str) -> dict[str, JobState]:
        states: dict[str, JobState] = await self._store.apply(outcomes, owner=owner)
        if self.losing:
            raise StoreUnavailable("the connection dropped (simulated)")
        return states


@asynccontextmanager
async def _run(
    jobs: int, *, max_attempts: int = 1, store_type: type[FailingStore] = FailingStore
) -> AsyncIterator[_Run]:
    """A run of a batch of ``jobs`` sleep jobs, all claimed, on a
    ``store_type`` around a fake store."""
    async with open_fake_store() as real:
        store = store_type(real)
        await store.create_batch("b", "sleep")
        added = await store.add_jobs("b", [NewJob(type="sleep", max_attempts=max_attempts)] * jobs)
        bus = EventBus()
        published: list[events.EventData] = []
        bus.observe(lambda event: published.append(event.data))
        patience = Patience()
        recorder = Recorder(
            batch_id="b",
            store=store,
            owner=_OWNER,
            bus=bus,
            backoff_seconds=1.0,
            clock=trio_wall_clock,
            retry=StoreRetry(),
            patience=patience,
        )
        recorder.start_tally(await store.counts("b"))
        held = HeldJobs(trio.CapacityLimiter(jobs))
        for record in await store.claim_jobs("b", jobs, owner=_OWNER, lease_seconds=60.0):
            credit = object()
            held.credits.acquire_on_behalf_of_nowait(credit)
            held.add(record, credit)
        yield _Run(
            recorder=recorder,
            held=held,
            store=store,
            patience=patience,
            job_ids=list(added.job_ids),
            published=published,
        )


async def test_outcomes_kept_through_an_outage_are_announced_once_at_release(
    autojump_clock: MockClock,
) -> None:
    async with _run(4) as run:
        a, b, c, d = run.job_ids
        started = [ipc.JobStarted(job_id=j, started_at=0.0) for j in run.job_ids]
        await run.record(ipc.BatchStarted(batch_id="b"), *started)
        await trio.sleep(1.0)
        await run.record(ipc.JobCompleted(job_id=a))
        # The run is stopped and its patience ran out with the store away.
        run.store.fail()
        run.patience.end_at(trio.current_time())
        await trio.sleep(1.0)
        await run.record(ipc.JobCompleted(job_id=b), ipc.JobFailed(job_id=c, error="boom"))
        assert run.terminal() == [(a, JobState.COMPLETED)]
        run.store.recover()
        await run.recorder.release(run.held, crashed=False)
        assert not run.held
        # d was still running: refunded, back to pending, not announced.
        assert sorted(run.terminal()) == sorted(
            [(a, JobState.COMPLETED), (b, JobState.COMPLETED), (c, JobState.FAILED)]
        )
        assert run.recorder.finished_counts() == Counts(completed=2, failed=1)
        stored = {j.job_id: j.state for j in (await run.store.list_jobs("b")).jobs}
        assert stored == {
            a: JobState.COMPLETED,
            b: JobState.COMPLETED,
            c: JobState.FAILED,
            d: JobState.PENDING,
        }
        b_done = next(
            e
            for e in run.published
            if isinstance(e, events.JobUpdate) and e.job_id == b and e.status is JobState.COMPLETED
        )
        # Its duration ends when the child reported it, not at the release.
        assert b_done.duration_ms == 2000.0


async def test_a_rate_limited_report_kept_through_an_outage_is_announced_at_release(
    autojump_clock: MockClock,
) -> None:
    async with _run(2) as run:
        a, b = run.job_ids
        await run.record(*(ipc.JobStarted(job_id=j, started_at=0.0) for j in run.job_ids))
        run.store.fail()
        run.patience.end_at(trio.current_time())
        await run.record(ipc.JobRateLimited(job_id=a, retry_after=5.0))
        assert not [e for e in run.published if isinstance(e, events.RateLimitedJob)]
        run.store.recover()
        await run.recorder.release(run.held, crashed=False)
        limited = [e for e in run.published if isinstance(e, events.RateLimitedJob)]
        assert [e.job_id for e in limited] == [a]
        assert run.terminal() == []  # neither finished: both back to pending
        stored = {j.job_id: (j.state, j.attempts) for j in (await run.store.list_jobs("b")).jobs}
        assert stored == {a: (JobState.PENDING, 0), b: (JobState.PENDING, 0)}


async def test_a_kept_failure_with_attempts_left_is_announced_as_retrying(
    autojump_clock: MockClock,
) -> None:
    async with _run(1, max_attempts=2) as run:
        (a,) = run.job_ids
        run.store.fail()
        run.patience.end_at(trio.current_time())
        await run.record(
            ipc.JobStarted(job_id=a, started_at=0.0), ipc.JobFailed(job_id=a, error="x")
        )
        run.store.recover()
        await run.recorder.release(run.held, crashed=False)
    retrying = [e for e in run.published if isinstance(e, events.JobRetrying)]
    assert [e.job_id for e in retrying] == [a]
    assert run.terminal() == []


async def test_a_kept_outcome_a_lost_reply_wrote_is_announced_at_release(
    autojump_clock: MockClock,
) -> None:
    async with _run(2, store_type=_LostReplies) as run:
        a, _ = run.job_ids
        assert isinstance(run.store, _LostReplies)
        run.store.losing = True
        run.patience.end_at(trio.current_time())
        await run.record(ipc.JobStarted(job_id=a, started_at=0.0), ipc.JobCompleted(job_id=a))
        assert a in run.held and run.terminal() == []
        run.store.losing = False
        await run.recorder.release(run.held, crashed=False)
    assert run.terminal() == [(a, JobState.COMPLETED)]
    assert run.recorder.finished_counts() == Counts(completed=1, failed=0)


async def test_a_burst_whose_outcomes_are_kept_still_publishes_its_other_events(
    autojump_clock: MockClock,
) -> None:
    async with _run(2) as run:
        a, b = run.job_ids
        run.store.fail()
        run.patience.end_at(trio.current_time())
        await run.record(
            ipc.BatchStarted(batch_id="b"),
            ipc.JobStarted(job_id=a, started_at=0.0),
            ipc.JobStarted(job_id=b, started_at=0.0),
            ipc.JobProgress(job_id=b, progress=50.0),
            ipc.JobCompleted(job_id=a),
            ipc.Progress(in_flight=1, completed=1, failed=0),
        )
        assert [type(e) for e in run.published] == [
            events.ProcessingStarted,
            events.JobUpdate,
            events.JobUpdate,
            events.JobUpdate,
            events.ProcessingProgress,
        ]
        assert run.terminal() == []
        assert a in run.held and b in run.held


async def test_an_outcome_for_a_job_another_engine_took_over_is_dropped_unannounced(
    autojump_clock: MockClock,
) -> None:
    async with _run(2, max_attempts=2) as run:
        a, b = run.job_ids
        started = [ipc.JobStarted(job_id=j, started_at=0.0) for j in run.job_ids]
        await run.record(*started)
        # The leases ran out (60 s), the jobs were recovered, another engine
        # claimed them again.
        await trio.sleep(61.0)
        assert await run.store.recover_expired_leases() == 2
        assert len(await run.store.claim_jobs("b", 2, owner="engine-2", lease_seconds=60)) == 2
        await run.record(ipc.JobCompleted(job_id=a))
        assert a not in run.held
        assert run.held.credits.borrowed_tokens == 1  # a's credit went back
        await run.recorder.release(run.held, crashed=False)  # b's Release
        assert not run.held and run.held.credits.borrowed_tokens == 0
        assert run.terminal() == []
        assert run.recorder.finished_counts() == Counts(completed=0, failed=0)
        stored = {j.job_id: j.state for j in (await run.store.list_jobs("b")).jobs}
        assert stored == {a: JobState.ACTIVE, b: JobState.ACTIVE}  # still engine-2's


async def test_progress_is_one_snapshot_per_burst_and_the_latest_before_done(
    autojump_clock: MockClock,
) -> None:
    async with _run(4) as run:
        a, b, c, d = run.job_ids
        started = [ipc.JobStarted(job_id=j, started_at=0.0) for j in run.job_ids]
        await run.record(*started)
        await run.record(
            ipc.JobCompleted(job_id=a),
            ipc.Progress(in_flight=3, completed=1, failed=0),
            ipc.JobFailed(job_id=b, error="boom"),
            ipc.Progress(in_flight=2, completed=1, failed=1),
            ipc.JobCompleted(job_id=c),
        )
        progress = [e for e in run.published if isinstance(e, events.ProcessingProgress)]
        # One for the burst, after all of its jobs, with the counts then.
        assert progress == [
            events.ProcessingProgress(batch_id="b", completed=2, failed=1, total=4)
        ]
        assert isinstance(run.published[-1], events.ProcessingProgress)
        await run.record(ipc.JobStarted(job_id=d, started_at=0.0))
        assert len([e for e in run.published if isinstance(e, events.ProcessingProgress)]) == 1
        # d finished as the child went away: settled by the release, whose
        # counts come in one more snapshot.
        run.held.get(d).outcome = Complete(job_id=d)  # type: ignore[union-attr]
        await run.recorder.release(run.held, crashed=False)
        last = run.published[-1]
        # Every job finished: nothing left to wait for.
        assert last == events.ProcessingProgress(
            batch_id="b", completed=3, failed=1, total=4, eta_seconds=0.0
        )
        # Nothing moved since: no other snapshot.
        await run.recorder.release(run.held, crashed=False)
        assert run.published[-1] is last
