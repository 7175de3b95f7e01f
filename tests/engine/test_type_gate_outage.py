"""A run waiting at its job types' gates (``[types.NAME]`` concurrency and
rate, kept in the store) outlives the store going away, on trio's
MockClock with in-process children: its gate polls wait the outage out as
its other store steps do, and a stopped run still ends within its grace."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from trio.testing import MockClock

from engine.config.settings import RateLimit
from engine.config.sources import TypeOverrides
from engine.core.engine import Engine
from engine.core.retry import Backoff
from engine.testing import FailingStore, collect_until, jobs_of, open_fake_store
from protocols.events import RunDone
from protocols.lifecycle import JobState
from tests.conftest import FakeEngineOpener

JOBS = 8

#: One job of the type at a time: with jobs of 1 s, every job but the
#: first waits for the slot.
_ONE_AT_A_TIME = TypeOverrides(concurrency=1)
#: One start every 2 s: every job but the first waits for the window.
_ONE_IN_2S = TypeOverrides(rate_limit=RateLimit(count=1, per_seconds=2.0))
_BOTH = TypeOverrides(concurrency=1, rate_limit=RateLimit(count=1, per_seconds=2.0))


@asynccontextmanager
async def _gated_engine(
    fake_engine: FakeEngineOpener, gate: TypeOverrides, **changes: float
) -> AsyncIterator[tuple[Engine, FailingStore, str]]:
    """An engine on a store that can fail, and a batch of 1 s jobs of the
    gated type, created, not started."""
    async with open_fake_store() as real:
        store = FailingStore(real)
        async with fake_engine(
            store=store, concurrency=3, type_overrides={"sleep": gate}, **changes
        ) as engine:
            batch_id, _ = await engine.create_batch(
                None, "sleep", jobs_of("sleep", [{"seconds": 1.0}] * JOBS)
            )
            yield engine, store, batch_id


@pytest.mark.parametrize(
    ("gate", "methods", "one_job_in"),
    [
        (_ONE_AT_A_TIME, ("take_slot",), 1.0),
        (_ONE_IN_2S, ("take_rate",), 2.0),
        (_BOTH, (), 2.0),
    ],
    ids=["slot-polls", "rate-polls", "everything"],
)
async def test_a_run_waiting_at_a_types_gate_waits_an_outage_out(
    fake_engine: FakeEngineOpener,
    autojump_clock: MockClock,
    caplog: pytest.LogCaptureFixture,
    gate: TypeOverrides,
    methods: tuple[str, ...],
    one_job_in: float,
) -> None:
    outage = 30.0
    async with _gated_engine(fake_engine, gate, lease_seconds=60.0) as (
        engine,
        store,
        batch_id,
    ):
        with engine.subscribe([batch_id]) as sub:
            began = trio.current_time()
            await engine.start(batch_id)
            # Mid-run: one or two jobs went through the gate, the rest wait at it.
            await trio.sleep(1.5)
            store.fail(*methods)
            await trio.sleep(1.0)
            healthy_while_away = await engine.store_healthy()
            await trio.sleep(outage - 1.0)
            store.recover()
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
            took = trio.current_time() - began
        await trio.sleep(Backoff().cap)
        healthy_after = await engine.store_healthy()
        page = await engine.list_jobs(batch_id)
    assert store.failed_calls > 0
    assert not healthy_while_away and healthy_after
    assert [e.event for e in seen].count("error") == 0
    assert seen[-1].data == RunDone(batch_id=batch_id, completed=JOBS, failed=0)
    finished = Counter(
        e.data.job_id
        for e in seen
        if e.event == "job:progress" and e.data.status in (JobState.COMPLETED, JobState.FAILED)
    )
    assert finished == Counter({job.job_id: 1 for job in page.jobs})
    assert {(job.state, job.attempts) for job in page.jobs} == {(JobState.COMPLETED, 1)}
    # One job through the gate every ``one_job_in`` seconds, and none while
    # the store was away (at most two went through before it).
    assert took >= (JOBS - 2) * one_job_in + outage
    assert caplog.text.count("the store is unavailable") == 1
    assert caplog.text.count("the store is back") == 1


async def test_a_run_stopped_while_its_gate_waits_for_the_store_ends_within_the_grace(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    grace = 5.0
    async with _gated_engine(
        fake_engine, _BOTH, lease_seconds=60.0, shutdown_grace_seconds=grace
    ) as (
        engine,
        store,
        batch_id,
    ):
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await trio.sleep(1.5)
            store.fail("take_slot", "take_rate")
            await trio.sleep(10.0)
            began = trio.current_time()
            await engine.shutdown()
            took = trio.current_time() - began
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
        page = await engine.list_jobs(batch_id)
    assert took <= grace
    assert seen[-1].event == "done" and seen[-1].data.reason == "shutdown"
    states = Counter(job.state for job in page.jobs)
    # What ran before the outage is recorded; the rest is pending again,
    # without an attempt used.
    assert states[JobState.COMPLETED] >= 1
    assert states[JobState.COMPLETED] + states[JobState.PENDING] == JOBS
    assert all(job.attempts == 0 for job in page.jobs if job.state is JobState.PENDING)


async def test_a_slot_freed_during_a_short_outage_is_freed_once_the_store_is_back(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Freeing a finished job's slot waits a short outage out: the next job
    of the type starts once the store is back, not a lease later."""
    lease, outage = 60.0, 3.0
    async with _gated_engine(fake_engine, _ONE_AT_A_TIME, lease_seconds=lease) as (
        engine,
        store,
        batch_id,
    ):
        began = trio.current_time()
        await engine.start(batch_id)
        # The second job runs; its slot is to be freed while the store is away.
        await trio.sleep(1.5)
        store.fail("release_slots")
        await trio.sleep(outage)
        store.recover()
        await engine.wait_stopped(batch_id)
        took = trio.current_time() - began
        page = await engine.list_jobs(batch_id)
    assert store.failed_calls > 0
    assert {(job.state, job.attempts) for job in page.jobs} == {(JobState.COMPLETED, 1)}
    assert "cannot free" not in caplog.text
    # One job at a time, and none while the second one's slot was held.
    assert JOBS * 1.0 + outage - 1.5 <= took < JOBS * 1.0 + outage + Backoff().cap
