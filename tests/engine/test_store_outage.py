"""A run outlives its store going away, on trio's MockClock with in-process
children: nothing lost, nothing recorded twice, health degraded meanwhile,
shutdown within the grace."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from engine.core.engine import Engine
from engine.core.retry import Backoff
from engine.errors import StoreError, StoreUnavailable
from engine.store import Claim, Outcome, Step
from engine.testing import FailingStore, collect_until, jobs_of, open_fake_store
from protocols.events import Event, RunDone
from protocols.lifecycle import JobState
from tests.conftest import FakeEngineOpener


def _terminal(events: list[Event]) -> list[Event]:
    return [
        e
        for e in events
        if e.event == "job:progress" and e.data.status in (JobState.COMPLETED, JobState.FAILED)
    ]


@asynccontextmanager
async def _failing(
    fake_engine: FakeEngineOpener, **changes: Any
) -> AsyncIterator[tuple[Engine, FailingStore]]:
    async with open_fake_store() as real:
        store = FailingStore(real)
        async with fake_engine(store=store, **changes) as engine:
            yield engine, store


async def _outage(
    engine: Engine, store: FailingStore, methods: Sequence[str], at: float, lasting: float
) -> None:
    """The store fails ``methods`` (all of them when none) for ``lasting``
    seconds from ``at``: the engine's health is degraded from the first
    failure on, ok again soon after."""
    assert await engine.store_healthy()
    await trio.sleep_until(at)
    store.fail(*methods)
    await trio.sleep(1.0)
    assert not await engine.store_healthy()
    await trio.sleep(lasting - 1.0)
    store.recover()
    await trio.sleep(Backoff().cap)
    assert await engine.store_healthy()


async def _run_through(
    engine: Engine, batch_id: str, outage: Callable[[], Any]
) -> tuple[list[Event], float]:
    """Start the batch with ``outage`` going on beside it: its events up to
    ``done`` (or ``error``) and how long the run took."""
    began = trio.current_time()
    with engine.subscribe([batch_id]) as sub:
        async with trio.open_nursery() as nursery:
            await engine.start(batch_id)
            nursery.start_soon(outage)
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
    return seen, trio.current_time() - began


@pytest.mark.parametrize("methods", [("apply", "claim_jobs"), ()], ids=["writes", "everything"])
async def test_a_store_away_for_30s_mid_run_loses_nothing(
    fake_engine: FakeEngineOpener,
    autojump_clock: MockClock,
    caplog: pytest.LogCaptureFixture,
    methods: tuple[str, ...],
) -> None:
    async with _failing(fake_engine, concurrency=3, lease_seconds=60.0) as (engine, store):
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 1.0}] * 12)
        )
        start = trio.current_time()
        seen, took = await _run_through(
            engine, batch_id, partial(_outage, engine, store, methods, start + 1.5, 30.0)
        )
        page = await engine.list_jobs(batch_id)
    assert store.failed_calls > 0
    assert [e.event for e in seen].count("error") == 0
    terminal = _terminal(seen)
    assert Counter(e.data.job_id for e in terminal) == Counter({j.job_id: 1 for j in page.jobs})
    assert all(e.data.status is JobState.COMPLETED for e in terminal)
    assert seen[-1].data == RunDone(batch_id=batch_id, completed=12, failed=0)
    assert {(j.state, j.attempts) for j in page.jobs} == {(JobState.COMPLETED, 1)}
    # The run waited the outage out: 4 rounds of 1 s, plus 30 s away.
    assert took >= 30.0 + 4 - 1
    progress = [e for e in seen if e.event == "processing:progress"]
    assert progress[-1].data.completed == 12
    # One line when the store went away and one when it was back, however
    # many steps were retried.
    assert caplog.text.count("the store is unavailable") == 1
    assert caplog.text.count("the store is back") == 1


async def test_health_is_degraded_while_the_store_is_away(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with _failing(fake_engine) as (engine, store):
        assert await engine.store_healthy()
        store.fail()
        assert not await engine.store_healthy()
        store.recover()
        assert await engine.store_healthy()


class _HangingPing(FailingStore):
    """A store whose ping never answers (a server that stopped reading)."""

    async def ping(self) -> None:
        await trio.sleep_forever()


async def test_a_ping_that_hangs_is_bounded(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with open_fake_store() as real, fake_engine(store=_HangingPing(real)) as engine:
        began = trio.current_time()
        assert not await engine.store_healthy(timeout=2.0)
        assert trio.current_time() - began == pytest.approx(2.0)


class _LostReplies(FailingStore):
    """A store that applies outcomes but loses the reply of the first
    ``lost`` applies, as a connection dropped after a script ran would."""

    def __init__(self, store: Any, lost: int) -> None:
        super().__init__(store)
        self.lost = lost

    async def apply(self, outcomes: Sequence[Outcome], *, owner: str) -> dict[str, JobState]:
        states: dict[str, JobState] = await self._store.apply(outcomes, owner=owner)
        self._lose()
        return states

    async def apply_and_claim(
        self, outcomes: Sequence[Outcome], *, owner: str, claim: Claim
    ) -> Step:
        if not self.lost:
            step: Step = await self._store.apply_and_claim(outcomes, owner=owner, claim=claim)
            return step
        # The outcomes are written and the reply lost; the claim took
        # nothing (a claim's jobs lost with its reply are the store's to
        # hand out again, which the store contract tests check).
        await self._store.apply(outcomes, owner=owner)
        self._lose()
        raise AssertionError("unreachable")

    def _lose(self) -> None:
        if self.lost:
            self.lost -= 1
            raise StoreUnavailable("the connection dropped (simulated)")


async def test_an_apply_whose_reply_was_lost_is_recorded_once(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with (
        open_fake_store() as real,
        fake_engine(store=_LostReplies(real, lost=3), concurrency=2) as engine,
    ):
        batch_id, _ = await engine.create_batch(None, "echo", jobs_of("echo", list(range(6))))
        seen, _ = await _run_through(engine, batch_id, trio.lowlevel.checkpoint)
        page = await engine.list_jobs(batch_id)
    terminal = _terminal(seen)
    assert sorted(e.data.job_id for e in terminal) == sorted(j.job_id for j in page.jobs)
    assert seen[-1].data == RunDone(batch_id=batch_id, completed=6, failed=0)
    assert [j.result for j in page.jobs] == list(range(6))


async def test_a_shutdown_during_an_outage_ends_within_the_grace(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    grace, lease = 5.0, 30.0
    async with open_fake_store() as real:
        store = FailingStore(real)
        async with fake_engine(
            store=store,
            concurrency=2,
            batch_size=2,  # two running, two prefetched
            shutdown_grace_seconds=grace,
            lease_seconds=lease,
        ) as engine:
            batch_id, _ = await engine.create_batch(
                None, "sleep", jobs_of("sleep", [{"seconds": 1.0}] * 8)
            )
            with engine.subscribe([batch_id]) as sub:
                await engine.start(batch_id)
                await trio.sleep(1.5)
                store.fail()
                await trio.sleep(10.0)
                began = trio.current_time()
                await engine.shutdown()
                took = trio.current_time() - began
                seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
        store.recover()
        await trio.sleep(lease)
        recovered = await real.recover_expired_leases()
        page = await real.list_jobs(batch_id)
    assert took <= grace
    assert seen[-1].event == "done" and seen[-1].data.reason == "shutdown"
    assert "cannot release 4 jobs" in caplog.text
    assert "come back to pending when their lease runs out" in caplog.text
    # Two finished before the outage. The two the child finished during it
    # (never recorded) and the two queued behind them come back, and run
    # again; nothing is lost and nothing counted twice.
    states = Counter(j.state for j in page.jobs)
    assert states == {JobState.COMPLETED: 2, JobState.PENDING: 6}
    assert recovered == 4
    assert all(j.attempts == 0 for j in page.jobs if j.state is JobState.PENDING)


async def test_a_store_that_refuses_a_write_ends_the_run_not_the_engine(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with _failing(fake_engine, concurrency=2) as (engine, store):
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 1.0}] * 4)
        )
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            store.fail("apply", error=StoreError)
            last = (await collect_until(sub, lambda e: e.event in ("done", "error")))[-1]
        await engine.wait_stopped(batch_id)
        store.recover()
        assert last.event == "error" and "the run failed" in last.data.error
        other, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None]))
        seen, _ = await _run_through(engine, other, trio.lowlevel.checkpoint)
    assert seen[-1].data == RunDone(batch_id=other, completed=1, failed=0)
