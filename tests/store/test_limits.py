"""The limits of the ``Store`` contract, on every backend: strict sliding
windows of cost (``take_rate``) and concurrency slots under a lease
(``take_slot``, ``release_slots``, ``renew_slots``).

The stores here run on a ``FakeClock``: a Redis store opened with a clock of
its own sends that clock's time to its scripts instead of reading Redis's
``TIME``, so windows and leases are driven by hand on both backends, exactly.
One test opens Redis without a clock, to check that its scripts read the
server's clock, with real time and generous bounds. Times and costs in the
property test are multiples of 1/8 and 1/4, so every sum is exact.
"""

from __future__ import annotations

import bisect
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.store import NewJob, Store
from engine.store.redis import open_redis_store
from tests.store.conftest import Opener
from tests.store.helpers import DEADLINE, LEASE, FakeClock, all_jobs

# -- rate windows -----------------------------------------------------------------------


async def test_a_window_admits_its_limit_and_then_says_how_long_to_wait(
    store: Store, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        assert [await store.take_rate("embed", 3, 10.0, 1) for _ in range(3)] == [0.0] * 3
        assert await store.take_rate("embed", 3, 10.0, 1) == 10.0
        clock.advance(4)
        assert await store.take_rate("embed", 3, 10.0, 1) == 6.0
        clock.advance(5.5)
        assert await store.take_rate("embed", 3, 10.0, 1) == 0.5
        # Half-open: a take at t counts until t + 10, not at t + 10.
        clock.advance(0.5)
        assert [await store.take_rate("embed", 3, 10.0, 1) for _ in range(3)] == [0.0] * 3
        assert await store.take_rate("embed", 3, 10.0, 1) == 10.0
        # Other keys are other windows.
        assert await store.take_rate("resize", 1, 10.0, 1) == 0.0


async def test_a_window_counts_cost(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.take_rate("tokens", 10, 60.0, 6) == 0.0
        clock.advance(2)
        assert await store.take_rate("tokens", 10, 60.0, 3) == 0.0
        # 5 more fit only once the 6 have left the window (58 s from now),
        assert await store.take_rate("tokens", 10, 60.0, 5) == 58.0
        # but 1 fits now, and a refused take took nothing.
        assert await store.take_rate("tokens", 10, 60.0, 1) == 0.0
        assert await store.take_rate("tokens", 10, 60.0, 0.5) == 58.0
        clock.advance(58)
        assert await store.take_rate("tokens", 10, 60.0, 5) == 0.0
        assert await store.take_rate("tokens", 10, 60.0, 2.5) == 2.0


async def test_a_delayed_take_keeps_later_takes_waiting_longer(
    store: Store, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.take_rate("embed", 2, 10.0, 1, holder="job-a") == 0.0
        clock.advance(1)
        assert await store.take_rate("embed", 2, 10.0, 1, holder="job-b") == 0.0
        # job-a's handler started 3 s after its take: it counts from then
        # (until 13), so job-b (until 11) leaves first; an unknown holder and
        # a delay that is not positive move nothing.
        await store.delay_rate("embed", {"job-a": 3.0, "job-z": 5.0})
        await store.delay_rate("embed", {"job-a": -2.0, "job-b": 0.0})
        assert await store.take_rate("embed", 2, 10.0, 1) == 10.0
        clock.advance(10)
        assert await store.take_rate("embed", 2, 10.0, 1) == 0.0
        assert await store.take_rate("embed", 2, 10.0, 1) == 2.0


async def test_only_a_holders_latest_take_is_delayed(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.take_rate("embed", 2, 10.0, 1, holder="job-a") == 0.0
        clock.advance(2)
        assert await store.take_rate("embed", 2, 10.0, 1, holder="job-a") == 0.0
        await store.delay_rate("embed", {"job-a": 4.0})
        # Both takes still count: the first until 10, the second until 16.
        assert await store.take_rate("embed", 2, 10.0, 1) == 8.0
        clock.advance(8)
        assert await store.take_rate("embed", 2, 10.0, 1) == 0.0
        assert await store.take_rate("embed", 2, 10.0, 1) == 6.0


@pytest.mark.parametrize(
    ("limit", "per_seconds", "cost"),
    [(5, 1.0, 6), (5, 1.0, 0), (5, 1.0, -1), (0, 1.0, 1), (5, 0.0, 1), (5, float("inf"), 1)],
)
async def test_impossible_takes_are_refused(
    store: Store, limit: float, per_seconds: float, cost: float
) -> None:
    with pytest.raises(ValueError, match=r"limit|cost|per_seconds"):
        await store.take_rate("k", limit, per_seconds, cost)


async def test_two_stores_share_a_window(open_backend: Opener, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        async with open_backend(clock) as one, open_backend(clock) as two:
            taken = []
            async with trio.open_nursery() as nursery:
                for store in [one, two] * 10:
                    nursery.start_soon(_take_into, store, taken)
            assert sorted(taken) == [0.0] * 5 + [30.0] * 15


async def _take_into(store: Store, taken: list[float]) -> None:
    taken.append(await store.take_rate("shared", 5, 30.0, 1))


def _busiest(admitted: list[tuple[float, float]], per_seconds: float) -> float:
    """The most cost any half-open window ``[t, t + per_seconds)`` holds (the
    busiest one can be slid until it begins at a take)."""
    times = [t for t, _ in admitted]
    return max(
        (
            sum(
                c
                for _, c in admitted[
                    bisect.bisect_left(times, t) : bisect.bisect_left(times, t + per_seconds)
                ]
            )
            for t in times
        ),
        default=0.0,
    )


def _fits(
    admitted: list[tuple[float, float]], now: float, per: float, limit: float, cost: float
) -> bool:
    return sum(c for t, c in admitted if t > now - per) + cost <= limit


# Gaps between takes, in eighths of a second: mostly within one window, so
# windows fill up, and now and then long enough to empty them.
_GAPS = st.one_of(
    st.just(0.0), st.integers(0, 8).map(lambda n: n / 8), st.integers(0, 40).map(lambda n: n / 8)
)


async def test_no_window_ever_holds_more_than_its_limit_of_cost(
    store: Store, clock: FakeClock
) -> None:
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        limit=st.sampled_from([1.0, 2.0, 2.5, 5.0, 10.0]),
        per_seconds=st.sampled_from([0.5, 1.0, 2.5]),
        steps=st.lists(
            st.tuples(_GAPS, st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 10.0])),
            max_size=40,
        ),
    )
    def check(limit: float, per_seconds: float, steps: list[tuple[float, float]]) -> None:
        key = uuid.uuid4().hex
        admitted: list[tuple[float, float]] = []
        for gap, cost in steps:
            if cost > limit:
                continue
            clock.advance(gap)
            now = clock.now
            wait = call(store.take_rate, key, limit, per_seconds, cost)
            if wait == 0.0:
                assert _fits(admitted, now, per_seconds, limit, cost)
                admitted.append((now, cost))
                continue
            # Refused only when admitting would overfill the window, and told
            # exactly when it first would fit: the next moment a take leaves.
            assert not _fits(admitted, now, per_seconds, limit, cost)
            leaving = sorted(t + per_seconds - now for t, _ in admitted if t + per_seconds > now)
            first = next(w for w in leaving if _fits(admitted, now + w, per_seconds, limit, cost))
            assert wait == first
        assert _busiest(admitted, per_seconds) <= limit

    def call(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return trio.from_thread.run(functools.partial(fn, *args))

    with trio.fail_after(600):
        await trio.to_thread.run_sync(check)


async def test_redis_windows_run_on_the_server_clock(redis_url: str) -> None:
    # Opened without a clock, the store reads Redis's TIME; the bounds are
    # generous, since real time passes between the calls.
    with trio.fail_after(DEADLINE):
        async with open_redis_store(redis_url) as store:
            assert await store.take_rate("k", 2, 0.5, 1) == 0.0
            assert await store.take_rate("k", 2, 0.5, 1) == 0.0
            wait = await store.take_rate("k", 2, 0.5, 1)
            assert 0.0 < wait <= 0.5
            await trio.sleep(wait + 0.05)
            assert await store.take_rate("k", 2, 0.5, 1) == 0.0
            assert await store.take_slot("s", "h1", 1, 0.3)
            assert not await store.take_slot("s", "h2", 1, 0.3)
            await trio.sleep(0.4)
            assert await store.take_slot("s", "h2", 1, 0.3)


# -- slots ------------------------------------------------------------------------------


async def test_slots_are_counted_per_key(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        assert [await store.take_slot("embed", f"j{i}", 2, 30.0) for i in range(3)] == [
            True,
            True,
            False,
        ]
        # A holder holds one slot however often it asks.
        assert await store.take_slot("embed", "j1", 2, 30.0)
        assert not await store.take_slot("embed", "j2", 2, 30.0)
        assert await store.take_slot("resize", "j2", 1, 30.0)
        await store.release_slots("embed", ["j0", "unknown"])
        assert await store.take_slot("embed", "j2", 2, 30.0)
        assert not await store.take_slot("embed", "j3", 2, 30.0)
        await store.release_slots("embed", [])
        await store.release_slots("embed", ["j1", "j2"])
        assert await store.take_slot("embed", "j3", 2, 30.0)
        assert await store.take_slot("embed", "j4", 2, 30.0)


async def test_expired_slots_are_free_and_stay_lost(store: Store, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        assert await store.take_slot("embed", "dead", 2, 30.0)
        assert await store.take_slot("embed", "alive", 2, 30.0)
        clock.advance(20)
        assert await store.renew_slots("embed", ["alive", "unknown"], 30.0) == 1
        assert await store.renew_slots("embed", [], 30.0) == 0
        clock.advance(10)  # the dead holder's lease ran out; the renewed one did not
        assert await store.take_slot("embed", "new", 2, 30.0)
        assert not await store.take_slot("embed", "other", 2, 30.0)
        assert await store.renew_slots("embed", ["dead"], 30.0) == 0
        clock.advance(40)
        assert await store.renew_slots("embed", ["alive", "new"], 30.0) == 0
        assert await store.take_slot("embed", "other", 2, 30.0)


@pytest.mark.parametrize(("limit", "lease"), [(0, 30.0), (1, 0.0), (1, float("nan"))])
async def test_impossible_slots_are_refused(store: Store, limit: int, lease: float) -> None:
    with pytest.raises(ValueError, match=r"limit|lease"):
        await store.take_slot("k", "h", limit, lease)


async def test_two_stores_never_hand_out_more_slots_than_the_limit(
    open_backend: Opener, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        async with open_backend(clock) as one, open_backend(clock) as two:
            got: list[bool] = []

            async def take(store: Store, holder: str) -> None:
                got.append(await store.take_slot("shared", holder, 3, 30.0))

            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(take, (one, two)[i % 2], f"h{i}")
            assert sorted(got) == [False] * 17 + [True] * 3


# -- costs ------------------------------------------------------------------------------


async def test_jobs_keep_their_cost(store: Store) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        await store.add_jobs("b", [NewJob(type="echo", cost=2.5), NewJob(type="echo")])
        claimed = await store.claim_jobs("b", 1, owner="e", lease_seconds=LEASE)
        assert [job.cost for job in claimed] == [2.5]
        assert [job.cost for job in await all_jobs(store, "b")] == [2.5, 1.0]
