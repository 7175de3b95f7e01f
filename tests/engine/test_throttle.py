"""Throttling from the handler (``RateLimited``) on trio's MockClock with
in-process children: the job comes back with no attempt used, its batch
starts nothing for ``retry_after`` (jobs already running go on), and its
type holds across the cluster only when it has a rate of its own. Every
time asserted here is exact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from engine.config.settings import RateLimit
from engine.config.sources import TypeOverrides
from engine.core.bus import Subscription
from engine.core.engine import Engine
from engine.core.throttle import Throttle
from engine.core.values import JobRequest
from engine.store import JobRecord
from engine.testing import collect_until, open_fake_store
from protocols.events import Event, JobUpdate, RateLimitedJob, RunDone
from protocols.lifecycle import JobState
from tests.conftest import FakeEngineOpener


def _raising(times: int = 1, retry_after: float = 5.0) -> JobRequest:
    return JobRequest(type="rate-limited", payload={"times": times, "retryAfter": retry_after})


class _Seen:
    """Every event of the engines, with the trio time it was published."""

    def __init__(self, *engines: Engine) -> None:
        self.events: list[tuple[float, Event]] = []
        for engine in engines:
            engine.observe_events(lambda e: self.events.append((trio.current_time(), e)))

    def starts(self, batch_id: str) -> list[float]:
        return [
            t
            for t, e in self.events
            if isinstance(e.data, JobUpdate)
            and e.data.batch_id == batch_id
            and e.data.status is JobState.ACTIVE
            and e.data.started_at is not None
        ]

    def rate_limited(self) -> list[tuple[float, RateLimitedJob]]:
        return [(t, e.data) for t, e in self.events if isinstance(e.data, RateLimitedJob)]


async def _until_done(sub: Subscription, runs: int) -> AsyncIterator[Event]:
    """The ``done`` events of ``runs`` runs, as they come."""
    async for event in sub:
        if event.event == "done":
            yield event
            runs -= 1
            if not runs:
                return


async def _run(engine: Engine, batch_id: str) -> RunDone:
    with trio.fail_after(600), engine.subscribe([batch_id]) as sub:
        await engine.start(batch_id)
        done = (await collect_until(sub))[-1].data
    assert isinstance(done, RunDone)
    return done


async def test_the_batch_starts_nothing_for_retry_after_and_no_attempt_is_used(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(concurrency=1) as engine:
        seen = _Seen(engine)
        jobs = [_raising(times=2, retry_after=5.0), *[JobRequest(type="noop")] * 3]
        batch_id, _ = await engine.create_batch(None, "noop", jobs)
        done = await _run(engine, batch_id)
        page = await engine.list_jobs(batch_id)
    assert (done.completed, done.failed) == (4, 0)
    (raising, *_) = page.jobs
    assert (raising.attempts, raising.state, raising.result) == (1, JobState.COMPLETED, 2)
    holds = seen.rate_limited()
    assert [(data.job_id, data.retry_after, data.type_wide) for _, data in holds] == [
        (raising.job_id, 5.0, False)
    ] * 2
    first, second = (t for t, _ in holds)
    assert second >= first + 5.0
    starts = seen.starts(batch_id)
    # Three starts of the job that raised, three of the noop jobs (some of
    # them prefetched into the child), and none while a hold is on.
    assert len(starts) == 6
    assert not [t for t in starts for h in (first, second) if h < t < h + 5.0]
    assert starts.count(pytest.approx(first + 5.0)) >= 1
    assert holds[0][1].resume_at - holds[0][0] == holds[1][1].resume_at - holds[1][0]


async def test_jobs_already_running_go_on_during_the_hold(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(concurrency=2) as engine:
        seen = _Seen(engine)
        jobs = [
            JobRequest(type="sleep", payload={"seconds": 3.0}),
            _raising(retry_after=5.0),
            JobRequest(type="noop"),
        ]
        batch_id, _ = await engine.create_batch(None, "noop", jobs)
        t0 = trio.current_time()
        done = await _run(engine, batch_id)
    assert (done.completed, done.failed) == (3, 0)
    ((raised_at, _),) = seen.rate_limited()
    finished = [
        t
        for t, e in seen.events
        if isinstance(e.data, JobUpdate) and e.data.status is JobState.COMPLETED
    ]
    # The sleep ended during the hold; the others started once it was over.
    assert finished[0] == pytest.approx(t0 + 3.0) and raised_at < t0 + 3.0
    assert sorted(seen.starts(batch_id))[2:] == pytest.approx([raised_at + 5.0] * 2)


@pytest.mark.parametrize("type_rate", [True, False], ids=["type-rate", "no-type-rate"])
async def test_a_type_with_a_rate_holds_across_the_cluster(
    autojump_clock: MockClock, fake_engine: FakeEngineOpener, type_rate: bool
) -> None:
    rate = RateLimit(count=100, per_seconds=1.0)
    types = {"rate-limited": TypeOverrides(rate_limit=rate)} if type_rate else {}
    async with (
        open_fake_store() as store,
        fake_engine(store=store, type_overrides=types) as one,
        fake_engine(store=store, type_overrides=types, max_active_batches=2) as two,
    ):
        seen = _Seen(one, two)
        a, _ = await one.create_batch(None, "noop", [_raising(retry_after=5.0)])
        b, _ = await two.create_batch(None, "noop", [_raising(times=0)])
        c, _ = await two.create_batch(None, "noop", [JobRequest(type="noop")])
        with trio.fail_after(600), one.subscribe([a]) as sub:
            await one.start(a)
            await collect_until(sub, lambda e: e.event == "job:rate-limited")
        ((raised_at, data),) = seen.rate_limited()
        assert data.type_wide is type_rate
        with trio.fail_after(600), two.subscribe([b, c]) as sub:
            await two.start(b)
            await two.start(c)
            ends = [e async for e in _until_done(sub, 2)]
        assert {e.data.batch_id for e in ends} == {b, c}
        await one.wait_stopped(a)
    # Another engine's batch of the held type waits out the hold; a batch of
    # another type does not; without a rate of its own the type is not held.
    (b_start,) = seen.starts(b)
    (c_start,) = seen.starts(c)
    assert c_start == pytest.approx(raised_at)
    assert b_start == pytest.approx(raised_at + 5.0 if type_rate else raised_at)


async def test_a_throttle_waits_out_holds_that_grow(autojump_clock: MockClock) -> None:
    throttle = Throttle()
    job: Any = JobRecord(
        job_id="j",
        batch_id="b",
        type="t",
        state=JobState.ACTIVE,
        payload=None,
        attempts=1,
        max_attempts=1,
        key=None,
        priority=0,
        result=None,
        error=None,
        traceback=None,
        created_at=0.0,
        available_at=0.0,
    )
    t0 = trio.current_time()
    await throttle.wait()
    assert trio.current_time() == t0 and not throttle.held()
    event = await throttle.hold(job, 2.0, now=1000.0)
    assert (event.resume_at, event.type_wide) == (1002.0, False)

    async def grow() -> None:
        await trio.sleep(1.0)
        await throttle.hold(job, 3.0, now=0.0)  # until t0 + 4
        await throttle.hold(job, 0.5, now=0.0)  # shorter: changes nothing

    async with trio.open_nursery() as nursery:
        nursery.start_soon(grow)
        await throttle.wait()
    assert trio.current_time() == pytest.approx(t0 + 4.0)
