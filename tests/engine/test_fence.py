"""Self-fencing on trio's MockClock: renewals that do not reach the store
stop the runs before the leases can lapse; a renewal in time stops
nothing; the fence lifts only once the store took back what the engine held."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
from trio.testing import MockClock

from engine.core.fence import MARGIN_FRACTION, Fence
from engine.core.leases import keep_leases
from engine.core.retry import Patience, StoreRetry
from engine.core.type_gate import TypeGate
from engine.errors import StoreUnavailable
from engine.testing import FailingStore, collect_until, jobs_of, open_fake_store
from protocols.events import RunDone
from protocols.lifecycle import JobState
from tests.conftest import FakeEngineOpener

_LEASE = 30.0


class _Store:
    """The store as lease keeping sees it: ``down`` fails every call at
    once; ``hanging`` makes a renewal wait until it is cleared (a cut link,
    which a call only learns of at its timeout)."""

    def __init__(self) -> None:
        self.down = False
        self.hanging = False
        self.hung = trio.Event()
        self.renewed_at: list[float] = []  # when each renewal reached the store
        self.calls: list[str] = []

    async def _answer(self, call: str) -> None:
        await trio.lowlevel.checkpoint()
        if self.down:
            raise StoreUnavailable(f"{call}: the store is down (simulated)")
        self.calls.append(call)

    async def renew_leases(self, owner: str, lease_seconds: float) -> int:
        await self._answer("renew_leases")
        self.renewed_at.append(trio.current_time())
        while self.hanging:
            await self.hung.wait()
        return 0

    async def recover_expired_leases(self) -> int:
        await self._answer("recover_expired_leases")
        return 0

    async def heartbeat(self) -> None:
        await self._answer("heartbeat")

    async def take_back(self) -> int:
        await self._answer("take_back")
        return 3


class _Runs:
    """When the runs were stopped and let start again."""

    def __init__(self) -> None:
        self.fenced_at: list[float] = []
        self.lifted_at: list[float] = []

    def fence(self) -> None:
        self.fenced_at.append(trio.current_time())

    def lift(self) -> None:
        self.lifted_at.append(trio.current_time())


@asynccontextmanager
async def _keeping(store: _Store, runs: _Runs) -> AsyncIterator[Fence]:
    """Lease keeping with a fence, as the cluster runs them, until the block ends."""
    fence = Fence(_LEASE, on_fence=runs.fence, on_lift=runs.lift, take_back=store.take_back)

    async def nothing() -> None:
        await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fence.watch)
        nursery.start_soon(
            partial(
                keep_leases,
                store,  # type: ignore[arg-type]
                "me",
                _LEASE,
                lambda: None,
                heartbeat=store.heartbeat,
                renew_slots=nothing,
                retry=StoreRetry(),
                fence=fence,
            )
        )
        yield fence
        nursery.cancel_scope.cancel()


async def test_renewals_that_fail_stop_the_runs_before_the_lease_ends(
    autojump_clock: MockClock,
) -> None:
    store, runs = _Store(), _Runs()
    start = trio.current_time()
    async with _keeping(store, runs) as fence:
        await trio.sleep(15)  # renewed at 10
        store.down = True
        await trio.sleep(40)
    last_renewal = store.renewed_at[-1]
    assert last_renewal - start == pytest.approx(10)
    # Stopped once, a margin before the lease sent at 10 could lapse (40).
    assert fence.margin == _LEASE * MARGIN_FRACTION == 5.0
    assert [t - last_renewal for t in runs.fenced_at] == pytest.approx([_LEASE - fence.margin])
    assert runs.lifted_at == []
    assert fence.fenced


async def test_a_renewal_that_hangs_does_not_hold_the_fence_back(
    autojump_clock: MockClock,
) -> None:
    """On a cut link a call waits for its timeout: the fence does not wait for it."""
    store, runs = _Store(), _Runs()
    start = trio.current_time()
    async with _keeping(store, runs):
        await trio.sleep(15)
        store.hanging = True  # the round at 20 reaches the store, its answer never comes
        await trio.sleep(40)
    # The renewal sent at 20 did reach the store, but the engine cannot know:
    # it fences 25 s after the last renewal it saw through (10).
    assert [t - start for t in runs.fenced_at] == pytest.approx([10 + _LEASE - 5.0])


async def test_a_renewal_in_time_stops_nothing(autojump_clock: MockClock) -> None:
    store, runs = _Store(), _Runs()
    start = trio.current_time()
    async with _keeping(store, runs) as fence:
        await trio.sleep(11)  # renewed at 10
        store.down = True  # the round at 20 fails, then every retry until 31
        await trio.sleep(20)
        store.down = False
        await trio.sleep(30)
    # Retries after the failure at 20: 20.1, 20.3, 20.7, 21.5, 23.1, 26.3,
    # then 31.3 gets through, 3.7 s before the fencing deadline (10 + 25).
    renewals = [t - start for t in store.renewed_at]
    assert renewals[:3] == pytest.approx([10, 31.3, 41.3])
    assert runs.fenced_at == []
    assert not fence.fenced
    assert "take_back" not in store.calls


async def test_the_fence_lifts_once_the_store_took_back_what_the_engine_held(
    autojump_clock: MockClock,
) -> None:
    store, runs = _Store(), _Runs()
    start = trio.current_time()
    async with _keeping(store, runs) as fence:
        await trio.sleep(11)
        store.down = True
        await trio.sleep(29)  # fenced at 35
        assert fence.fenced
        store.down = False
        await trio.sleep(10)
    assert [t - start for t in runs.fenced_at] == pytest.approx([35])
    # The first round that reaches the store (its retry at 41.3 is after 40)
    # takes back first, renews, and only then lets runs start.
    assert [t - start for t in runs.lifted_at] == pytest.approx([41.3])
    back = store.calls.index("take_back")
    assert store.calls[back - 1 : back + 2] == ["heartbeat", "take_back", "renew_leases"]
    assert not fence.fenced


async def test_a_renewal_on_its_way_since_before_the_fence_does_not_lift_it(
    autojump_clock: MockClock,
) -> None:
    """Its answer comes late: it took nothing back, so the runs stay refused
    until the next round has."""
    store, runs = _Store(), _Runs()
    start = trio.current_time()
    async with _keeping(store, runs) as fence:
        await trio.sleep(15)
        store.hanging = True  # the round at 20 hangs
        await trio.sleep(22)  # fenced at 35
        store.hanging = False
        store.hung.set()  # its answer arrives at 37: a renewal sent at 20
        await trio.sleep(0.1)
        assert fence.fenced
        assert runs.lifted_at == []
        await trio.sleep(15)  # the next round, at 47, takes back and lifts
    assert [t - start for t in runs.fenced_at] == pytest.approx([35])
    assert [t - start for t in runs.lifted_at] == pytest.approx([47])
    assert store.calls.count("take_back") == 1


# --- an engine ------------------------------------------------------------------


async def test_an_engine_whose_store_is_away_for_less_than_the_fence_keeps_its_run(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    """The store away for 20 s of a 30 s lease (a Redis restart, say): the
    run waits it out with its child, and nothing is stopped."""
    async with (
        open_fake_store() as real,
        fake_engine(
            store=(store := FailingStore(real)), lease_seconds=_LEASE, concurrency=2
        ) as engine,
    ):
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 4.0}] * 10)
        )
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await trio.sleep(10.5)  # just after a renewal
            store.fail()
            await trio.sleep(20)
            store.recover()
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
        page = await real.list_jobs(batch_id)
    assert store.failed_calls > 0
    assert seen[-1].data == RunDone(batch_id=batch_id, completed=10, failed=0)
    assert {(j.state, j.attempts) for j in page.jobs} == {(JobState.COMPLETED, 1)}


async def test_an_engine_whose_store_is_away_past_the_fence_loses_nothing(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The store away for 40 s of a 30 s lease: the run stops ``fenced``
    before its leases lapse, and once the store is back its jobs are
    pending again without an attempt used, the run handed over; the engine
    (the only one) resumes it and runs every job once."""
    async with (
        open_fake_store() as real,
        fake_engine(
            store=(store := FailingStore(real)), lease_seconds=_LEASE, concurrency=2
        ) as engine,
    ):
        batch_id, _ = await engine.create_batch(
            None, "sleep", jobs_of("sleep", [{"seconds": 4.0}] * 10)
        )
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await trio.sleep(10.5)
            failed_at = trio.current_time()
            store.fail()
            first = await collect_until(sub, lambda e: e.event in ("done", "error"))
            fenced_at = trio.current_time()
            assert engine.runner_of(await real.get_batch(batch_id)) == engine.owner
            await trio.sleep_until(failed_at + 40)
            store.recover()
            second = await collect_until(sub, lambda e: e.event in ("done", "error"))
        page = await real.list_jobs(batch_id)
    assert first[-1].event == "done" and first[-1].data.reason == "fenced"
    # The last renewal went out at most a period (10 s) before the store
    # went away: fenced 25 s after it at the latest.
    assert 15.0 <= fenced_at - failed_at <= _LEASE - 5.0
    assert "stopping every run here before another engine may take it over" in caplog.text
    assert second[-1].event == "done" and second[-1].data.reason is None
    assert {(j.state, j.attempts) for j in page.jobs} == {(JobState.COMPLETED, 1)}


async def test_a_renewal_through_only_past_the_deadline_fences_first(
    autojump_clock: MockClock,
) -> None:
    """As after a frozen process: the renewal gets through late, when other
    engines may have taken over already, so the runs stop all the same."""
    runs, store = _Runs(), _Store()
    fence = Fence(_LEASE, on_fence=runs.fence, on_lift=runs.lift, take_back=store.take_back)
    start = trio.current_time()
    await trio.sleep(26)  # no watch ran meanwhile; the deadline was at 25
    fence.renewed(trio.current_time())
    assert [t - start for t in runs.fenced_at] == [26]
    assert fence.fenced  # until the store took back what it held
    assert runs.lifted_at == []
    await fence.take_back()
    fence.renewed(trio.current_time())
    assert not fence.fenced
    assert [t - start for t in runs.lifted_at] == [26]


async def test_slots_forgotten_at_a_fence_are_renewed_no_more_nor_freed(
    autojump_clock: MockClock,
) -> None:
    """A job's slot is the job's (held in its id): another engine may run it
    by now, so the fenced engine neither frees the slot nor keeps it alive;
    nobody renewing it, it comes back after its lease."""
    async with open_fake_store() as store:
        gate = TypeGate(store, "sleep", concurrency=1, lease_seconds=3.0)
        assert await gate.take_slot(
            "job-1", trio.lowlevel.checkpoint, retry=StoreRetry(), patience=Patience()
        )
        gate.forget_all()
        await trio.sleep(2.0)
        await gate.renew()  # renews nothing: job-1's slot still ends at 3 s
        assert not await store.take_slot("sleep", "job-2", 1, 3.0)
        await trio.sleep(1.5)
        assert await store.take_slot("sleep", "job-2", 1, 3.0)
