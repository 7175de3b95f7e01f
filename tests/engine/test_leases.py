"""Lease keeping and remembered runs, against fakes on the Trio MockClock."""

from __future__ import annotations

import logging
from functools import partial

import pytest
import trio
import trio.testing

from engine.core.leases import RememberedRuns, keep_leases
from engine.core.retry import StoreRetry
from engine.core.values import StartResult
from engine.errors import BatchNotFound, StoreUnavailable
from engine.store import RunRecord


class _LeaseStore:
    """Records renewals; ``expired`` jobs are recovered by the next round."""

    def __init__(self) -> None:
        self.renewed_at: list[float] = []
        self.expired = 0
        self.down = False

    async def renew_leases(self, owner: str, lease_seconds: float) -> int:
        await trio.lowlevel.checkpoint()
        if self.down:
            raise StoreUnavailable("the store is down (simulated)")
        assert (owner, lease_seconds) == ("me", 30.0)
        self.renewed_at.append(trio.current_time())
        return 0

    async def recover_expired_leases(self) -> int:
        await trio.lowlevel.checkpoint()
        recovered, self.expired = self.expired, 0
        return recovered


async def test_leases_are_renewed_every_third_and_recovery_wakes_the_runs(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = _LeaseStore()
    retry = StoreRetry()
    woken_at: list[float] = []
    slots_renewed_at: list[float] = []
    beats: list[float] = []

    async def heartbeat() -> None:
        await trio.lowlevel.checkpoint()
        if store.down:
            raise StoreUnavailable("the store is down (simulated)")
        beats.append(trio.current_time())

    start = trio.current_time()

    async def renew_slots() -> None:
        await trio.lowlevel.checkpoint()
        slots_renewed_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(
                keep_leases,
                store,
                "me",
                30.0,
                lambda: woken_at.append(trio.current_time()),
                heartbeat=heartbeat,
                renew_slots=renew_slots,
                retry=retry,
            )
        )
        await trio.sleep(25)
        store.expired = 2
        await trio.sleep(10)
        store.down = True
        await trio.sleep(21)
        assert not retry.store_available
        store.down = False
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    # Down from 35 to 56: the round at 40 fails, and the next ones come
    # sooner, after the store's backoff (0.1 s doubling, at most 5 s): at
    # 40.1, 40.3, 40.7, 41.5, 43.1, 46.3, 51.3; the one at 56.3 renews, and
    # the rounds go back to every 10 s.
    back = 56.3
    assert [t - start for t in store.renewed_at] == pytest.approx([10, 20, 30, back])
    assert [t - start for t in slots_renewed_at] == pytest.approx([10, 20, 30, back])
    assert [t - start for t in beats] == pytest.approx([10, 20, 30, back])  # with renewals
    assert [t - start for t in woken_at] == [30]
    assert retry.store_available
    assert "recovered 2 jobs from expired leases" in caplog.text
    # One line when the store went away, one when it came back: not one per round.
    assert caplog.text.count("the store is unavailable") == 1
    assert caplog.text.count("the store is back after 16.3 s") == 1


_NOW = 1000.0


class _RunStore:
    """Remembers runs handed over by an earlier engine, and ``others``: runs
    of engines that hold them until ``_NOW + 1``."""

    def __init__(self, handed_over: set[str], others: dict[str, str] | None = None) -> None:
        self.records = [RunRecord(batch_id=b, owner=None, expires_at=1.0) for b in handed_over]
        self.records += [
            RunRecord(batch_id=b, owner=owner, expires_at=_NOW + 1)
            for b, owner in (others or {}).items()
        ]

    async def runs(self) -> list[RunRecord]:
        await trio.lowlevel.checkpoint()
        return self.records


class _Starter:
    """Answers each start from ``answers`` (an exception is raised)."""

    def __init__(self, answers: dict[str, StartResult | Exception]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def start(self, batch_id: str) -> StartResult:
        await trio.lowlevel.checkpoint()
        self.asked.append(batch_id)
        answer = self.answers[batch_id]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_remembered_runs_start_in_order_within_capacity(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _RunStore({"e", "d", "c", "b", "a"})
    starter = _Starter(
        {
            "a": StartResult.STARTED,
            "b": BatchNotFound("batch 'b' does not exist"),
            "c": StartResult.ALREADY_RUNNING,
            "d": StartResult.CAPACITY_REACHED,
            "e": StartResult.STARTED,
        }
    )
    remembered = _remembered(store, starter, draining=False)
    with caplog.at_level(logging.INFO, logger="batchyard.engine"):
        assert await remembered.resume() == 1
    # b cannot start at all: skipped. d meets full capacity: the rest waits.
    assert starter.asked == ["a", "b", "c", "d"]
    assert "[batch a] resumed" in caplog.text and "[batch b] cannot resume" in caplog.text

    starter.answers["d"] = StartResult.STARTED
    store.records = [r for r in store.records if r.batch_id in "de"]
    assert await remembered.resume() == 2
    assert starter.asked[4:] == ["d", "e"]


async def test_a_store_failure_while_resuming_is_the_callers() -> None:
    store = _RunStore({"a"})
    starter = _Starter({"a": StoreUnavailable("the store is down (simulated)")})
    with pytest.raises(StoreUnavailable):
        await _remembered(store, starter, draining=False).resume()


def _remembered(store: _RunStore, starter: _Starter, *, draining: bool) -> RememberedRuns:
    return RememberedRuns(
        store,  # type: ignore[arg-type]
        owner="me",
        clock=lambda: _NOW,
        start=starter.start,
        draining=lambda: draining,
    )


async def test_only_free_runs_and_this_engines_own_are_resumed() -> None:
    store = _RunStore({"b"}, {"a": "me", "c": "another engine"})
    store.records.append(RunRecord(batch_id="d", owner="a dead engine", expires_at=_NOW))
    starter = _Starter(dict.fromkeys("abcd", StartResult.STARTED))
    await _remembered(store, starter, draining=False).resume()
    assert starter.asked == ["a", "b", "d"]


async def test_nothing_is_resumed_while_the_engine_drains() -> None:
    store = _RunStore({"a"})
    starter = _Starter({"a": StartResult.STARTED})
    await _remembered(store, starter, draining=True).resume()
    assert starter.asked == []
