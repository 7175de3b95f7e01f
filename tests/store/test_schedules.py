"""The schedule part of the ``Store`` contract, run against every backend:
each due time of a schedule is claimed by exactly one caller, never one
earlier than the last claimed, and the last firing of each schedule is
known to every store object on the same data."""

from __future__ import annotations

import trio

from engine.store import Store
from tests.store.conftest import Opener
from tests.store.helpers import DEADLINE, FakeClock

DUE = 1_700_000_040.0


async def test_a_due_time_is_claimed_once(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.last_firings() == {}
        assert await store.claim_firing("nightly", DUE)
        assert not await store.claim_firing("nightly", DUE)
        assert await store.last_firings() == {"nightly": DUE}


async def test_an_earlier_due_time_never_fires_after_a_later_one(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.claim_firing("nightly", DUE + 60)
        assert not await store.claim_firing("nightly", DUE)
        assert await store.claim_firing("nightly", DUE + 120)
        assert await store.last_firings() == {"nightly": DUE + 120}


async def test_schedules_are_claimed_apart(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.claim_firing("a", DUE)
        assert await store.claim_firing("b", DUE)
        assert await store.claim_firing("a", DUE + 0.5)  # exact, not rounded
        assert await store.last_firings() == {"a": DUE + 0.5, "b": DUE}


async def test_of_several_engines_claiming_at_once_exactly_one_wins(
    open_backend: Opener, clock: FakeClock
) -> None:
    """Three store objects on the same data (three engines) race for each of
    five due times: every due time has exactly one winner."""
    wins: list[tuple[int, float]] = []

    async def engine(number: int, store: Store) -> None:
        for minute in range(5):
            if await store.claim_firing("every-minute", DUE + 60 * minute):
                wins.append((number, DUE + 60 * minute))

    with trio.fail_after(DEADLINE):
        async with (
            open_backend(clock) as one,
            open_backend(clock) as two,
            open_backend(clock) as three,
            trio.open_nursery() as nursery,
        ):
            for number, store in enumerate((one, two, three)):
                nursery.start_soon(engine, number, store)
        assert sorted(due for _, due in wins) == [DUE + 60 * m for m in range(5)]
        async with open_backend(clock) as fourth:
            assert await fourth.last_firings() == {"every-minute": DUE + 240}
