"""The sliding-window rate limiter, on a mock clock.

Every example runs on ``MockClock(autojump_threshold=0)``: time only moves
when every task waits, so start times are exact and a test of minutes of
limiter time takes milliseconds.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.limits import RateLimiter, RateLimiterStatistics

# One acquire of an arrival plan: the wait before it, in windows, and whether
# it uses ``acquire_nowait`` (a refused one is simply skipped).
_Step = tuple[float, bool]


def _busiest_window(starts: Sequence[float], per_seconds: float) -> int:
    """The most starts any half-open window ``[t, t + per_seconds)`` holds.

    The busiest window can always be slid right until it begins at a start,
    so checking the windows that begin at each start covers them all.
    """
    ordered = sorted(starts)
    return max(
        (
            bisect.bisect_left(ordered, t + per_seconds) - bisect.bisect_left(ordered, t)
            for t in ordered
        ),
        default=0,
    )


def test_busiest_window_counts_half_open_windows() -> None:
    assert _busiest_window([], 1.0) == 0
    assert _busiest_window([0.0, 0.5, 1.0, 1.5], 1.0) == 2
    assert _busiest_window([0.0, 0.5, 0.999, 1.0], 1.0) == 3
    assert _busiest_window([2.0, 2.0, 2.0], 0.1) == 3


async def _run_plans(
    count: int, per_seconds: float, plans: Sequence[Sequence[_Step]]
) -> tuple[list[float], int]:
    """Each plan is one task; returns every start time and how many blocking
    acquires there were (each must end in a start)."""
    limiter = RateLimiter(count, per_seconds)
    starts: list[float] = []

    async def client(plan: Sequence[_Step]) -> None:
        for gap, nowait in plan:
            await trio.sleep(gap * per_seconds)
            if nowait:
                try:
                    limiter.acquire_nowait()
                except trio.WouldBlock:
                    continue
            else:
                await limiter.acquire()
            starts.append(trio.current_time())

    with trio.fail_after(10_000 * per_seconds):
        async with trio.open_nursery() as nursery:
            for plan in plans:
                nursery.start_soon(client, plan)
    blocking = sum(not nowait for plan in plans for _, nowait in plan)
    return starts, blocking


_steps = st.lists(
    st.tuples(
        st.one_of(st.just(0.0), st.floats(0.0, 3.0, allow_nan=False)),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 6),
    per_seconds=st.one_of(st.sampled_from([1.0, 2.5, 60.0]), st.floats(0.01, 100.0)),
    plans=st.lists(_steps, min_size=1, max_size=10),
)
def test_no_window_ever_holds_more_than_count_starts(
    count: int, per_seconds: float, plans: list[list[_Step]]
) -> None:
    starts, blocking = trio.run(
        _run_plans,
        count,
        per_seconds,
        plans,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert len(starts) >= blocking
    assert _busiest_window(starts, per_seconds) <= count


async def test_saturated_limiter_starts_exactly_count_per_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(3, 2.0)
    t0 = trio.current_time()
    starts: list[float] = []

    async def greedy() -> None:
        while True:
            await limiter.acquire()
            starts.append(trio.current_time() - t0)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(greedy)
            await trio.sleep_until(t0 + 5 * 2.0 - 1.0)
            nursery.cancel_scope.cancel()
    assert starts == [2.0 * window for window in range(5) for _ in range(3)]


async def test_saturation_after_staggered_starts_fills_every_sliding_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    count, per_seconds, cutoff = 3, 2.0, 13.0
    limiter = RateLimiter(count, per_seconds)
    t0 = trio.current_time()
    starts: list[float] = []

    async def once(offset: float) -> None:
        await trio.sleep(offset)
        await limiter.acquire()
        starts.append(trio.current_time() - t0)

    async def greedy() -> None:
        await trio.sleep(1.0)
        while True:
            await limiter.acquire()
            starts.append(trio.current_time() - t0)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            for offset in (0.0, 0.5, 0.75):
                nursery.start_soon(once, offset)
            for _ in range(6):
                nursery.start_soon(greedy)
            await trio.sleep_until(t0 + cutoff)
            nursery.cancel_scope.cancel()
    assert starts[:6] == [0.0, 0.5, 0.75, 2.0, 2.5, 2.75]
    ordered = sorted(starts)
    full_windows = [t for t in ordered if t + per_seconds <= cutoff]
    assert len(full_windows) >= 15
    for t in full_windows:
        held = bisect.bisect_left(ordered, t + per_seconds) - bisect.bisect_left(ordered, t)
        assert held == count, (t, ordered)


async def test_acquire_nowait_refuses_a_full_window_without_taking_a_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(2, 5.0)
    t0 = trio.current_time()
    with trio.testing.assert_no_checkpoints():
        limiter.acquire_nowait()
        limiter.acquire_nowait()
        with pytest.raises(trio.WouldBlock):
            limiter.acquire_nowait()
    assert limiter.statistics().cost_in_window == 2
    await trio.sleep(4.999)
    with pytest.raises(trio.WouldBlock):
        limiter.acquire_nowait()
    await trio.sleep_until(t0 + 5.0)
    limiter.acquire_nowait()
    limiter.acquire_nowait()
    with pytest.raises(trio.WouldBlock):
        limiter.acquire_nowait()


async def test_available_counts_starts_left_in_the_sliding_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(3, 10.0)
    t0 = trio.current_time()
    assert limiter.available() == 3
    limiter.acquire_nowait()
    assert limiter.available() == 2
    await trio.sleep(4.0)
    limiter.acquire_nowait()
    assert limiter.available() == 1
    await trio.sleep_until(t0 + 9.5)
    assert limiter.available() == 1
    # The window is half-open: a start at t0 no longer counts at t0 + 10.
    await trio.sleep_until(t0 + 10.0)
    assert limiter.available() == 2
    await trio.sleep_until(t0 + 14.0)
    assert limiter.available() == 3


async def test_statistics_is_a_frozen_snapshot(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter(2, 3.0)
    t0 = trio.current_time()
    assert limiter.statistics() == RateLimiterStatistics(
        count=2, per_seconds=3.0, cost_in_window=0, next_start_at=t0
    )
    limiter.acquire_nowait()
    await trio.sleep(1.0)
    limiter.acquire_nowait()
    snapshot = limiter.statistics()
    assert snapshot == RateLimiterStatistics(
        count=2, per_seconds=3.0, cost_in_window=2, next_start_at=t0 + 3.0
    )
    assert limiter.next_start_at() == t0 + 3.0
    await trio.sleep_until(t0 + 3.0)
    assert limiter.statistics().cost_in_window == 1
    assert limiter.statistics().next_start_at == t0 + 3.0
    assert snapshot.cost_in_window == 2
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        snapshot.count = 5  # type: ignore[misc]


async def test_acquire_waits_for_the_oldest_start_to_leave_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(2, 4.0)
    t0 = trio.current_time()
    await limiter.acquire()
    await trio.sleep(1.0)
    await limiter.acquire()
    assert trio.current_time() == t0 + 1.0
    await limiter.acquire()
    assert trio.current_time() == t0 + 4.0
    await limiter.acquire()
    assert trio.current_time() == t0 + 5.0


async def test_a_cancelled_acquire_takes_no_start(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter(1, 10.0)
    t0 = trio.current_time()
    limiter.acquire_nowait()
    with trio.move_on_after(3.0) as scope:
        await limiter.acquire()
    assert scope.cancelled_caught
    assert trio.current_time() == t0 + 3.0
    assert limiter.statistics().cost_in_window == 1
    await trio.sleep_until(t0 + 10.0)
    # Had the cancelled acquire kept a start, the window would still be full.
    limiter.acquire_nowait()


async def test_an_acquire_cancelled_before_it_runs_takes_no_start_even_with_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(1, 10.0)
    with trio.CancelScope() as scope:
        scope.cancel()
        await limiter.acquire()
    assert scope.cancelled_caught
    assert limiter.available() == 1


async def test_a_deadline_at_the_moment_of_room_either_takes_a_start_or_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(1, 2.0)
    t0 = trio.current_time()
    limiter.acquire_nowait()
    returned = False
    with trio.move_on_at(t0 + 2.0):
        await limiter.acquire()
        returned = True
    assert limiter.statistics().cost_in_window == int(returned)


@pytest.mark.parametrize(
    ("count", "per_seconds", "complaint"),
    [
        (0, 1.0, "count must be at least 1"),
        (-1, 1.0, "count must be at least 1"),
        (1, 0.0, "per_seconds must be positive and finite"),
        (1, -1.0, "per_seconds must be positive and finite"),
        (1, math.inf, "per_seconds must be positive and finite"),
        (1, math.nan, "per_seconds must be positive and finite"),
    ],
)
def test_constructor_refuses_out_of_range_limits(
    count: int, per_seconds: float, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        RateLimiter(count, per_seconds)


def test_constructor_accepts_the_smallest_limits() -> None:
    RateLimiter(1, 1e-9)
