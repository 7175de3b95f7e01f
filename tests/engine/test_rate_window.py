"""The child's sliding window (the batch's rate limit) for jobs of cost 1, on a
mock clock (jobs of other costs: ``test_rate_window_cost``).

Every example runs on ``MockClock(autojump_threshold=0)``: time only moves
when every task waits, so start times are exact and a test of minutes of
limiter time takes milliseconds.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.child.rate_window import RateWindow
from tests.engine.windows import busiest_cost

# One take of an arrival plan: the wait before it, in windows, and whether
# it uses ``take_nowait`` (a refused one is simply skipped).
_Step = tuple[float, bool]


def _busiest_window(starts: Sequence[float], per_seconds: float) -> float:
    """The most starts (each of cost 1) any half-open window holds."""
    return busiest_cost([(t, 1.0) for t in starts], per_seconds)


def test_busiest_window_counts_half_open_windows() -> None:
    assert _busiest_window([], 1.0) == 0
    assert _busiest_window([0.0, 0.5, 1.0, 1.5], 1.0) == 2
    assert _busiest_window([0.0, 0.5, 0.999, 1.0], 1.0) == 3
    assert _busiest_window([2.0, 2.0, 2.0], 0.1) == 3


async def _run_plans(
    count: int, per_seconds: float, plans: Sequence[Sequence[_Step]]
) -> tuple[list[float], int]:
    """Each plan is one task; returns every start time and how many blocking
    takes there were (each must end in a start)."""
    limiter = RateWindow(count, per_seconds)
    starts: list[float] = []

    async def client(plan: Sequence[_Step]) -> None:
        for gap, nowait in plan:
            await trio.sleep(gap * per_seconds)
            if nowait:
                if not limiter.take_nowait():
                    continue
            else:
                await limiter.take()
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
    limiter = RateWindow(3, 2.0)
    t0 = trio.current_time()
    starts: list[float] = []

    async def greedy() -> None:
        while True:
            await limiter.take()
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
    limiter = RateWindow(count, per_seconds)
    t0 = trio.current_time()
    starts: list[float] = []

    async def once(offset: float) -> None:
        await trio.sleep(offset)
        await limiter.take()
        starts.append(trio.current_time() - t0)

    async def greedy() -> None:
        await trio.sleep(1.0)
        while True:
            await limiter.take()
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


async def test_take_nowait_refuses_a_full_window_without_taking_a_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateWindow(2, 5.0)
    t0 = trio.current_time()
    with trio.testing.assert_no_checkpoints():
        assert limiter.take_nowait()
        assert limiter.take_nowait()
        assert not limiter.take_nowait()
    assert limiter.available() == 0
    await trio.sleep(4.999)
    assert not limiter.take_nowait()
    await trio.sleep_until(t0 + 5.0)
    assert limiter.take_nowait()
    assert limiter.take_nowait()
    assert not limiter.take_nowait()


async def test_available_counts_starts_left_in_the_sliding_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateWindow(3, 10.0)
    t0 = trio.current_time()
    assert limiter.available() == 3
    limiter.take_nowait()
    assert limiter.available() == 2
    await trio.sleep(4.0)
    limiter.take_nowait()
    assert limiter.available() == 1
    await trio.sleep_until(t0 + 9.5)
    assert limiter.available() == 1
    # The window is half-open: a start at t0 no longer counts at t0 + 10.
    await trio.sleep_until(t0 + 10.0)
    assert limiter.available() == 2
    await trio.sleep_until(t0 + 14.0)
    assert limiter.available() == 3


async def test_next_start_at_is_when_the_oldest_starts_have_made_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateWindow(2, 3.0)
    t0 = trio.current_time()
    assert limiter.next_start_at() == t0
    limiter.take_nowait()
    await trio.sleep(1.0)
    limiter.take_nowait()
    assert limiter.next_start_at() == t0 + 3.0
    assert limiter.next_start_at(2.0) == t0 + 4.0
    await trio.sleep_until(t0 + 3.0)
    assert limiter.available() == 1
    assert limiter.next_start_at() == t0 + 3.0


async def test_take_waits_for_the_oldest_start_to_leave_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateWindow(2, 4.0)
    t0 = trio.current_time()
    await limiter.take()
    await trio.sleep(1.0)
    assert await limiter.take() == t0 + 1.0
    await limiter.take()
    assert trio.current_time() == t0 + 4.0
    await limiter.take()
    assert trio.current_time() == t0 + 5.0


async def test_a_cancelled_take_takes_no_start(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateWindow(1, 10.0)
    t0 = trio.current_time()
    limiter.take_nowait()
    with trio.move_on_after(3.0) as scope:
        await limiter.take()
    assert scope.cancelled_caught
    assert trio.current_time() == t0 + 3.0
    assert limiter.available() == 0
    await trio.sleep_until(t0 + 10.0)
    # Had the cancelled take kept a start, the window would still be full.
    assert limiter.take_nowait()


async def test_a_take_cancelled_before_it_runs_takes_no_start_even_with_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateWindow(1, 10.0)
    with trio.CancelScope() as scope:
        scope.cancel()
        await limiter.take()
    assert scope.cancelled_caught
    assert limiter.available() == 1


async def test_a_deadline_at_the_moment_of_room_either_takes_a_start_or_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateWindow(1, 2.0)
    t0 = trio.current_time()
    limiter.take_nowait()
    returned = False
    with trio.move_on_at(t0 + 2.0):
        await limiter.take()
        returned = True
    assert limiter.available() == 1 - int(returned)


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
        RateWindow(count, per_seconds)


def test_constructor_accepts_the_smallest_limits() -> None:
    RateWindow(1, 1e-9)
