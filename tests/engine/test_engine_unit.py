"""The engine's control of runs, on trio's MockClock with in-process children:
start answers, cancel and shutdown with their grace period, pause and
resume. Every time asserted here is exact."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from engine.core.engine import StartResult
from engine.errors import BatchNotRunning, BatchRunning, ShuttingDown
from engine.store import BatchRecord
from engine.testing import FailingStore, collect_until, jobs_of, open_fake_store
from tests.conftest import FakeEngineOpener


async def test_start_answers_started_already_running_capacity_reached(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(max_active_batches=1) as engine:
        first, _ = await engine.create_batch(None, "sleep", jobs_of("sleep", [{"seconds": 30}]))
        second, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None]))
        assert await engine.start(first) is StartResult.STARTED
        assert await engine.start(first) is StartResult.ALREADY_RUNNING
        assert await engine.start(second) is StartResult.CAPACITY_REACHED
        assert engine.status().running_batches == (first,)
        with engine.subscribe([first]) as sub:
            await engine.cancel(first)
            done = (await collect_until(sub))[-1]
        assert done.data.reason == "cancelled"
        await engine.wait_stopped(first)
        assert not engine.is_running(first)
        assert await engine.start(second) is StartResult.STARTED
        with pytest.raises(BatchNotRunning):
            await engine.cancel(first)


async def test_cancel_kills_a_hung_child_at_the_grace_deadline(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(shutdown_grace_seconds=1.5) as engine:
        batch_id, _ = await engine.create_batch(None, "hang", jobs_of("hang", [{"seconds": 60}]))
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, lambda e: e.event == "job:progress")
            began = trio.current_time()
            await engine.cancel(batch_id)
            done = (await collect_until(sub))[-1]
            took = trio.current_time() - began
        counts = await engine.counts(batch_id)
        page = await engine.list_jobs(batch_id)
    assert took == pytest.approx(1.5)
    assert done.data.reason == "cancelled"
    assert counts.pending == 1
    assert page.jobs[0].attempts == 0


async def test_shutdown_kills_long_jobs_at_the_grace_deadline(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(shutdown_grace_seconds=2.0, concurrency=4, warm_children=0) as engine:
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 30}] * 4)
        )
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, lambda e: e.event == "job:progress")
            began = trio.current_time()
            await engine.shutdown()
            took = trio.current_time() - began
            with pytest.raises(ShuttingDown):
                await engine.start(batch_id)
            done = (await collect_until(sub))[-1]
        counts = await engine.counts(batch_id)
    assert took == pytest.approx(2.0)
    assert done.data.reason == "shutdown"
    assert (counts.pending, counts.active) == (4, 0)


async def test_shutdown_returns_as_soon_as_the_jobs_in_flight_finish(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(shutdown_grace_seconds=10.0, concurrency=4) as engine:
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 0.5}] * 8)
        )
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, lambda e: e.event == "job:progress")
            began = trio.current_time()
            await engine.shutdown()
            took = trio.current_time() - began
        counts = await engine.counts(batch_id)
    assert took == pytest.approx(0.5)
    # The four in flight finished; the four queued in the child came back.
    assert (counts.completed, counts.pending, counts.active) == (4, 4, 0)


async def test_a_second_shutdown_skips_the_wait(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(shutdown_grace_seconds=20.0) as engine:
        batch_id, _ = await engine.create_batch(None, "sleep", jobs_of("sleep", [{"seconds": 60}]))
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, lambda e: e.event == "job:progress")
            began = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(engine.shutdown)
                await trio.sleep(0.3)
                await engine.shutdown()
            took = trio.current_time() - began
        assert (await engine.counts(batch_id)).pending == 1
    assert took == pytest.approx(0.3)


async def test_pause_holds_dispatch_until_resume(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine() as engine:
        batch_id, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None] * 3))
        engine.pause()
        assert engine.status().paused
        with engine.subscribe([batch_id]) as sub:
            assert await engine.start(batch_id) is StartResult.STARTED
            with trio.move_on_after(60):
                await collect_until(sub, lambda e: e.event == "job:progress")
                pytest.fail("a job was handed out while paused")
            engine.resume()
            assert not engine.status().paused
            seen = await collect_until(sub)
    assert seen[-1].data.completed == 3


class _StartedElsewhereMeanwhile(FailingStore):
    """A store on which another engine starts the batch right after each
    ``get_batch`` read it: between a check and what follows it."""

    async def get_batch(self, batch_id: str) -> BatchRecord:
        record: BatchRecord = await self._store.get_batch(batch_id)
        await self._store.acquire_run(batch_id, "other-engine", 60.0)
        return record


async def test_delete_refuses_a_batch_started_elsewhere_after_the_check(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with open_fake_store() as real:
        async with fake_engine(store=_StartedElsewhereMeanwhile(real)) as engine:
            batch_id, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None]))
            with pytest.raises(BatchRunning, match="other-engine"):
                await engine.delete_batch(batch_id)
        assert (await real.counts(batch_id)).total == 1
        assert [run.owner for run in await real.runs()] == ["other-engine"]
