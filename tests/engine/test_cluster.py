"""The cluster on trio's MockClock: engines sharing one in-memory store
take over runs (after a lease expires, or at once when handed over or left
by a dead predecessor on this host), start batches by themselves in order
and within capacity, wait for the batches of a flow, and list each other;
an engine cut off past its lease records nothing over the new owner."""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import pytest
import trio
from trio.testing import MockClock

from engine.core.engine import Engine, JobRequest, StartResult
from engine.core.identity import EngineIdentity, engine_process_lives
from engine.errors import BatchNotRunning, BatchRunning, StoreError
from engine.store import EngineRecord, NewJob, Store
from engine.testing import (
    FailingStore,
    collect_until,
    jobs_of,
    open_fake_engine,
    open_fake_store,
)
from protocols.events import Event
from protocols.lifecycle import JobState
from tests.conftest import FakeEngineOpener

#: A pid no process can have (beyond Linux's largest, 2**22).
_NO_SUCH_PID = 2**22 + 1


_Test = TypeVar("_Test", bound=Callable[..., Awaitable[None]])


def _bounded(test: _Test) -> _Test:
    """``test`` within two minutes of the mock clock: a takeover that never
    comes fails the test instead of spinning the clock forever."""

    @functools.wraps(test)
    async def bounded(*args: Any, **kwargs: Any) -> None:
        with trio.fail_after(120):
            await test(*args, **kwargs)

    return cast(_Test, bounded)


@asynccontextmanager
async def _store() -> AsyncIterator[Store]:
    async with open_fake_store() as store:
        yield store


async def _left_behind(store: Store, *, owner: str, host: str, pid: int, jobs: int) -> str:
    """A batch of ``jobs`` sleep jobs whose run ``owner`` held when it died
    (now), two of them claimed, with the engine's last heartbeat."""
    batch_id = f"left-by-{owner}"
    await store.create_batch(batch_id, "sleep")
    await store.add_jobs(batch_id, [NewJob(type="sleep", payload={"seconds": 1})] * jobs)
    await store.acquire_run(batch_id, owner, 30)
    assert len(await store.claim_jobs(batch_id, 2, owner=owner, lease_seconds=30)) == min(jobs, 2)
    boot_id = EngineIdentity.of_this_process("me").boot_id
    record = EngineRecord(engine_id=owner, host=host, pid=pid, boot_id=boot_id, max_batches=1)
    await store.heartbeat(record, 30)
    return batch_id


def _sleeps(*seconds: float) -> list[JobRequest]:
    return jobs_of("sleep", [{"seconds": s} for s in seconds])


async def _first(sub: AsyncIterator[Event], name: str) -> float:
    async for event in sub:
        if event.event == name:
            return trio.current_time()
    raise AssertionError(f"no {name} event")


async def _all_completed_once(engine: Engine, batch_id: str, total: int) -> None:
    page = await engine.list_jobs(batch_id, limit=1000)
    assert [job.state for job in page.jobs] == [JobState.COMPLETED] * total
    assert {job.attempts for job in page.jobs} == {1}  # the dead engine's claim refunded


@_bounded
async def test_a_dead_engines_run_is_taken_over_once_its_lease_expires(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with _store() as store:
        batch_id = await _left_behind(store, owner="engine-dead", host="elsewhere", pid=1, jobs=4)
        async with fake_engine(store=store) as engine:
            assert engine.runner_of(await engine.get_batch(batch_id)) == "engine-dead"
            with engine.subscribe([batch_id]) as sub:
                started = await _first(sub, "processing:started")
                await collect_until(sub)
            # The lease ran out at 30 s; the next look came within a second.
            assert 30 <= started < 31
            await _all_completed_once(engine, batch_id, 4)
            await trio.sleep(15)  # a heartbeat later, the dead engine is forgotten
            assert [e.engine_id for e in await store.engines()] == [engine.owner]


@_bounded
async def test_a_dead_predecessor_on_this_host_is_taken_back_at_once(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    host = socket.gethostname()
    async with _store() as store:
        gone = await _left_behind(store, owner="engine-gone", host=host, pid=_NO_SUCH_PID, jobs=3)
        # pid 1 lives, but it is no batchyard engine: the pid was reused.
        reused = await _left_behind(store, owner="engine-reused", host=host, pid=1, jobs=3)
        elsewhere = await _left_behind(store, owner="engine-far", host="far", pid=1, jobs=1)
        opened = trio.current_time()
        async with fake_engine(store=store, max_active_batches=3) as engine:
            assert trio.current_time() == opened
            assert engine.runner_of(await engine.get_batch(gone)) == engine.owner
            assert engine.runner_of(await engine.get_batch(reused)) == engine.owner
            assert engine.runner_of(await engine.get_batch(elsewhere)) == "engine-far"
            for batch_id in (gone, reused):
                await engine.wait_stopped(batch_id)
                await _all_completed_once(engine, batch_id, 3)
            ids = {e.engine_id for e in await store.engines()}
            assert ids == {engine.owner, "engine-far"}
    assert "engine engine-gone (pid 4194305 on this host) is gone" in caplog.text


def test_a_live_process_counts_as_an_engine_only_by_its_command_line() -> None:
    assert not engine_process_lives(_NO_SUCH_PID)
    assert not engine_process_lives(os.getpid())  # pytest is no batchyard engine
    me = EngineIdentity.of_this_process("engine-me")
    twin = EngineRecord(
        engine_id="engine-twin", host=me.host, pid=me.pid, boot_id=me.boot_id, max_batches=1
    )
    assert not me.outlives(twin)  # another engine of this very process lives


@_bounded
async def test_a_graceful_shutdown_hands_the_run_over_at_once(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with _store() as store, fake_engine(store=store) as staying:
        sub = staying.subscribe()
        async with fake_engine(store=store) as leaving:
            batch_id, _ = await leaving.create_batch(
                None, "sleep", jobs_of("sleep", [{"seconds": 1}] * 10)
            )
            assert await leaving.start(batch_id) is StartResult.STARTED
            assert await staying.start(batch_id) is StartResult.ALREADY_RUNNING
            assert staying.runner_of(await staying.get_batch(batch_id)) == leaving.owner
            with pytest.raises(BatchRunning):
                await staying.delete_batch(batch_id)
            await trio.sleep(2.5)
            await leaving.shutdown()
            handed_over = trio.current_time()
        with sub:
            resumed = await _first(sub, "processing:started")
            await collect_until(sub)
        assert resumed - handed_over <= 1  # not the 30 s lease: within one look
        assert staying.runner_of(await staying.get_batch(batch_id)) is None
        await _all_completed_once(staying, batch_id, 10)
        assert [e.engine_id for e in await staying.engines()] == [staying.owner]


@_bounded
async def test_auto_start_takes_the_oldest_batches_within_capacity(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(auto_start=True, max_active_batches=2) as engine:
        with engine.subscribe() as sub:
            batch_ids = []
            for _ in range(4):
                batch_id, _ = await engine.create_batch(
                    None, "sleep", jobs_of("sleep", [{"seconds": 3}] * 2)
                )
                batch_ids.append(batch_id)
                await trio.sleep(0.001)  # so each is older than the next
            order: list[str] = []
            most_at_once = 0
            async for event in sub:
                if event.event == "processing:started":
                    order.append(event.data.batch_id)
                    most_at_once = max(most_at_once, engine.status().active_batches)
                if event.event == "done" and len(order) == 4:
                    break
    assert order == batch_ids
    assert most_at_once == 2


@_bounded
async def test_a_batch_flagged_auto_start_starts_by_itself_on_any_engine(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(max_active_batches=2) as engine:
        asked, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None]))
        with engine.subscribe() as sub:
            created = trio.current_time()
            flagged, _ = await engine.create_batch(
                None, "noop", jobs_of("noop", [None]), {"autoStart": True}
            )
            event = await collect_until(sub, lambda e: e.event == "processing:started")
        assert event[-1].data.batch_id == flagged
        assert trio.current_time() == created  # woken by the creation itself
        await engine.wait_stopped(flagged)
        await trio.sleep(5)
        assert (await engine.counts(asked)).pending == 1  # without the flag, it waits


@_bounded
async def test_a_flow_step_waits_for_every_batch_it_follows(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with fake_engine(max_active_batches=3) as engine:
        first, _ = await engine.create_batch("first", "sleep", _sleeps(5))
        second, _ = await engine.create_batch("second", "sleep", _sleeps(2))
        step, _ = await engine.create_batch(
            "step", "noop", jobs_of("noop", [None]), {"after": [first, second]}
        )
        orphan, _ = await engine.create_batch(
            "orphan", "noop", jobs_of("noop", [None]), {"after": ["missing"]}
        )
        times: dict[str, float] = {}
        with engine.subscribe() as sub:
            await engine.start(first)
            await trio.sleep(1)
            await engine.start(second)
            async for event in sub:
                times[f"{event.event} {event.data.batch_id}"] = trio.current_time()
                if event.event == "done" and event.data.batch_id == step:
                    break
        await trio.sleep(10)
        assert (await engine.counts(orphan)).pending == 1
    assert times["done first"] <= times["processing:started step"]
    assert times["done second"] <= times["processing:started step"]
    assert times["processing:started step"] - max(times["done first"], times["done second"]) < 1
    assert caplog.text.count("[batch orphan] waits for batch 'missing'") == 1


@_bounded
async def test_status_lists_every_live_engine_of_the_cluster(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with _store() as store, fake_engine(store=store, max_active_batches=3) as one:
        async with fake_engine(store=store) as two:
            batch_id, _ = await two.create_batch(None, "sleep", _sleeps(60))
            await two.start(batch_id)
            await trio.sleep(0.1)  # the start is told at once, not at the next renewal
            engines = {e.engine_id: e for e in await one.engines()}
            assert set(engines) == {one.owner, two.owner}
            assert engines[two.owner].running_batches == (batch_id,)
            assert (engines[one.owner].max_batches, engines[two.owner].max_batches) == (3, 1)
            assert engines[one.owner].pid == os.getpid()
            assert engines[two.owner].last_seen == pytest.approx(trio.current_time() + 1.7e9)
            assert one.status().engine_id == one.owner
        assert [e.engine_id for e in await one.engines()] == [one.owner]


@_bounded
async def test_a_run_that_fails_after_starting_is_handed_over_and_resumed(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with _store() as real:
        store = FailingStore(real)
        async with open_fake_engine(store=store) as engine:
            batch_id, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None] * 3))
            store.fail("claim_jobs", error=StoreError)  # refused: not an outage
            with caplog.at_level(logging.ERROR), engine.subscribe([batch_id]) as sub:
                await engine.start(batch_id)
                error = await collect_until(sub, lambda e: e.event == "error")
                assert "the run failed" in error[-1].data.error
                failed = trio.current_time()
                assert [(r.batch_id, r.owner) for r in await real.runs()] == [(batch_id, None)]
                store.recover()
                resumed = await _first(sub, "processing:started")
                done = await collect_until(sub)
            # Not in a loop: this engine leaves it for a renewal period first.
            assert 10 <= resumed - failed < 11
            assert done[-1].data.completed == 3
            assert await real.runs() == []


@_bounded
async def test_a_full_engine_answers_already_running_for_a_batch_run_elsewhere(
    autojump_clock: MockClock,
) -> None:
    """202, not 429: the batch runs, only not here."""
    async with (
        _store() as store,
        open_fake_engine(store=store, max_active_batches=1) as first,
        open_fake_engine(store=store, max_active_batches=1) as second,
    ):
        long, _ = await first.create_batch(None, "sleep", _sleeps(60))
        busy, _ = await second.create_batch(None, "sleep", _sleeps(60))
        assert await first.start(long) is StartResult.STARTED
        assert await second.start(busy) is StartResult.STARTED
        assert await second.start(long) is StartResult.ALREADY_RUNNING
        other, _ = await second.create_batch(None, "sleep", _sleeps(1))
        assert await second.start(other) is StartResult.CAPACITY_REACHED
        await first.cancel(long)
        await second.cancel(busy)


@_bounded
async def test_cancel_on_another_engine_names_the_engine_that_runs_it(
    autojump_clock: MockClock,
) -> None:
    async with (
        _store() as store,
        open_fake_engine(store=store) as first,
        open_fake_engine(store=store) as second,
    ):
        batch_id, _ = await first.create_batch(None, "sleep", _sleeps(60))
        assert await first.start(batch_id) is StartResult.STARTED
        with pytest.raises(BatchNotRunning, match=f"runs on engine '{first.owner}'"):
            await second.cancel(batch_id)
        await first.cancel(batch_id)


@_bounded
async def test_an_engine_cut_off_stops_its_run_before_its_lease_lapses(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A is cut off from the store mid-job: it fences itself (its run ends
    ``fenced``, its child killed) before its leases lapse, without the
    store; B then takes the run over and runs the job, once and without an
    attempt used. Back on the store, A takes back nothing (B has it all)
    and may start runs again."""
    async with _store() as store, trio.open_nursery() as nursery:
        cut_off = FailingStore(store)
        terminal: list[tuple[str, JobState]] = []
        ends: list[tuple[str, str | None, float]] = []

        async def collect(engine: Engine) -> None:
            with engine.subscribe() as sub:
                async for event in sub:
                    status = getattr(event.data, "status", JobState.ACTIVE)
                    if event.event == "job:progress" and status is not JobState.ACTIVE:
                        terminal.append((engine.owner, status))
                    if event.event in ("done", "error"):
                        reason = getattr(event.data, "reason", None)
                        ends.append((engine.owner, reason, trio.current_time()))

        async with (
            fake_engine(store=cut_off, lease_seconds=3.0) as a,
            fake_engine(store=store, lease_seconds=3.0) as b,
        ):
            nursery.start_soon(collect, a)
            nursery.start_soon(collect, b)
            batch_id, _ = await a.create_batch(None, "sleep", _sleeps(10))
            await a.start(batch_id)
            await trio.sleep(0.1)
            assert (await store.counts(batch_id)).active == 1
            cut_at = trio.current_time()
            cut_off.fail()
            await a.wait_stopped(batch_id)
            stopped_at = trio.current_time()
            # Its last renewal went out at most a renewal period (1 s) before
            # the cut: it stopped 2.5 s after that, half a second before the
            # leases it holds could lapse, and its child is gone.
            assert 1.5 <= stopped_at - cut_at <= 2.5
            assert a.runner_of(await store.get_batch(batch_id)) == a.owner  # in the store
            assert (await store.counts(batch_id)).active == 1
            with pytest.raises(StoreError, match="could not renew its leases"):
                await a.start(batch_id)
            await trio.sleep(3.0)  # the leases ran out at 3 s; B looks each second
            assert b.runner_of(await store.get_batch(batch_id)) == b.owner
            cut_off.recover()
            await b.wait_stopped(batch_id)
            page = await store.list_jobs(batch_id)
            assert [(j.state, j.attempts) for j in page.jobs] == [(JobState.COMPLETED, 1)]
            await trio.sleep(1)  # every event has reached its subscriber
            assert terminal == [(b.owner, JobState.COMPLETED)]
            assert [(owner, reason) for owner, reason, _ in ends] == [
                (a.owner, "fenced"),
                (b.owner, None),
            ]
            assert ends[0][2] == stopped_at
            # Back on the store, A runs batches again.
            other, _ = await a.create_batch(None, "sleep", _sleeps(0.5))
            assert await a.start(other) is StartResult.STARTED
            await a.wait_stopped(other)
            assert (await store.counts(other)).completed == 1
            nursery.cancel_scope.cancel()
    assert "stopping every run here before another engine may take it over" in caplog.text
    assert "the store answers again: 0 jobs this engine held back to pending" in caplog.text


@_bounded
async def test_a_job_handed_back_to_the_run_that_still_runs_it_is_not_sent_twice(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    """Its job went back to pending while its handler ran (as when the
    engine's process was frozen past its fence and another engine recovered
    the lapsed leases), and this run's next claim took it again: it is still
    running here, so the child does not get it a second time."""
    async with (
        _store() as store,
        fake_engine(store=store, lease_seconds=3.0, concurrency=2) as engine,
    ):
        batch_id, _ = await engine.create_batch(None, "sleep", _sleeps(10, 10))
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await trio.sleep(0.1)
            # As another engine of the cluster would, seeing them lapse:
            assert await store.recover_engine(engine.owner) == 2
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
    assert [e.event for e in seen].count("error") == 0
    assert seen[-1].event == "done" and seen[-1].data.completed == 2
