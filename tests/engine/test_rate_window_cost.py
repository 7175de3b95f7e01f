"""The child's sliding window of cost (the batch's rate limit): jobs of
different costs, the starts an earlier child made, a handler's hold and the
order waiters take in, on a mock clock (``MockClock(autojump_threshold=0)``:
time only moves when every task waits, so start times are exact).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.child.rate_window import RateWindow
from protocols import ipc
from tests.engine.windows import busiest_cost


def test_busiest_cost_weighs_half_open_windows() -> None:
    assert busiest_cost([], 1.0) == 0
    assert busiest_cost([(0.0, 2.0), (0.5, 1.5), (1.0, 3.0)], 1.0) == 4.5
    assert busiest_cost([(0.0, 2.0), (0.999, 1.5), (1.0, 3.0)], 1.0) == 4.5


async def _run_costly(
    count: int, per_seconds: float, plans: Sequence[Sequence[tuple[float, float]]]
) -> list[tuple[float, float]]:
    """Each plan is one task of (wait in windows, cost) takes; returns every
    start with its cost."""
    window = RateWindow(count, per_seconds)
    starts: list[tuple[float, float]] = []

    async def client(plan: Sequence[tuple[float, float]]) -> None:
        for gap, cost in plan:
            await trio.sleep(gap * per_seconds)
            starts.append((await window.take(cost), min(cost, count)))

    with trio.fail_after(10_000 * per_seconds):
        async with trio.open_nursery() as nursery:
            for plan in plans:
                nursery.start_soon(client, plan)
    return starts


_costs = st.one_of(st.sampled_from([0.5, 1.0, 2.0, 3.0]), st.floats(0.01, 8.0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 6),
    per_seconds=st.one_of(st.sampled_from([1.0, 2.5, 60.0]), st.floats(0.01, 100.0)),
    plans=st.lists(
        st.lists(st.tuples(st.floats(0.0, 3.0), _costs), min_size=1, max_size=6),
        min_size=1,
        max_size=8,
    ),
)
def test_no_window_ever_holds_more_than_count_of_cost(
    count: int, per_seconds: float, plans: list[list[tuple[float, float]]]
) -> None:
    starts = trio.run(
        _run_costly, count, per_seconds, plans, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    assert len(starts) == sum(len(plan) for plan in plans)
    assert busiest_cost(starts, per_seconds) <= count + 1e-9


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(1, 6), cost=st.integers(1, 6), per_seconds=st.sampled_from([0.5, 2.0]))
def test_saturation_reaches_the_limit_of_cost_in_every_window(
    count: int, cost: int, per_seconds: float
) -> None:
    cost = min(cost, count)

    async def saturate() -> list[tuple[float, float]]:
        window, starts = RateWindow(count, per_seconds), []
        t0 = trio.current_time()

        async def greedy() -> None:
            while True:
                starts.append((await window.take(cost) - t0, float(cost)))

        async with trio.open_nursery() as nursery:
            for _ in range(count + 2):
                nursery.start_soon(greedy)
            await trio.sleep(6 * per_seconds - per_seconds / 2)
            nursery.cancel_scope.cancel()
        return starts

    starts = trio.run(saturate, clock=trio.testing.MockClock(autojump_threshold=0))
    # Every window beginning at a start within the first five is full: as
    # many whole costs as fit in the count, no more.
    per_window = (count // cost) * cost
    for t, _ in starts:
        if t + per_seconds <= 5 * per_seconds:
            assert sum(c for at, c in starts if t <= at < t + per_seconds) == per_window


async def test_a_cost_over_the_count_counts_as_a_whole_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    window = RateWindow(3, 2.0)
    t0 = trio.current_time()
    assert await window.take(7.0) == t0
    assert window.available() == 0
    assert await window.take(0.5) == t0 + 2.0


@pytest.mark.parametrize("cost", [0.0, -1.0, math.inf, math.nan])
def test_a_cost_that_is_not_a_positive_number_is_refused(cost: float) -> None:
    with pytest.raises(ValueError, match="cost must be a finite number > 0"):
        RateWindow(3, 1.0).next_start_at(cost)


async def test_handed_starts_count_as_this_windows_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The engine's wall clock reads 1000.0 as the child begins: one start
    # of cost 2 at 999.0 and one of cost 1 at 999.5 are still in a 2 s window.
    rate = ipc.StartRate(
        count=3,
        per_seconds=2.0,
        recent=(
            ipc.RecentStart(started_at=999.5, cost=1.0),
            ipc.RecentStart(started_at=999.0, cost=2.0),
        ),
    )
    t0 = trio.current_time()
    window = RateWindow.handed(rate, wall_now=1000.0)
    assert window.available() == 0
    assert await window.take() == t0 + 1.0  # the start of cost 2 left at 1001.0
    # The handed start of cost 1 leaves at 1001.5, making room for cost 2.
    assert await window.take(2.0) == t0 + 1.5


async def test_handed_starts_already_out_of_the_window_count_for_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rate = ipc.StartRate(
        count=1, per_seconds=2.0, recent=(ipc.RecentStart(started_at=998.0, cost=1.0),)
    )
    assert RateWindow.handed(rate, wall_now=1000.0).take_nowait()


async def test_no_rate_is_no_limit_but_a_hold_is_still_waited_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    window = RateWindow.handed(None, wall_now=1000.0)
    t0 = trio.current_time()
    for _ in range(100):
        assert window.take_nowait(5.0)
    assert window.available() == math.inf
    assert not window.take_nowait(1.0, not_before=lambda: t0 + 3.0)
    assert await window.take(1.0, not_before=lambda: t0 + 3.0) == t0 + 3.0


async def test_a_hold_that_begins_while_a_start_waits_for_room_is_waited_out_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    window = RateWindow(1, 2.0)
    t0 = trio.current_time()
    hold_until = -math.inf

    async def hold_at_one_second() -> None:
        nonlocal hold_until
        await trio.sleep(1.0)
        hold_until = trio.current_time() + 4.0

    window.take_nowait()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold_at_one_second)
        # Room at t0 + 2, but the hold that began at t0 + 1 lasts until t0 + 5.
        assert await window.take(1.0, not_before=lambda: hold_until) == t0 + 5.0


async def test_take_nowait_weighs_the_start_against_one_reading_of_the_real_clock() -> None:
    # On a clock that moves between two readings, room "now" must not be
    # read as room a moment later than the start it admits.
    window = RateWindow(2, 60.0)
    assert window.take_nowait()
    assert window.take_nowait()
    assert not window.take_nowait()


async def test_a_handed_start_later_than_the_wall_clock_counts_as_made_now(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The wall clock was set back: an earlier child's start reads 5 s ahead.
    rate = ipc.StartRate(
        count=2, per_seconds=2.0, recent=(ipc.RecentStart(started_at=1005.0, cost=1.0),)
    )
    t0 = trio.current_time()
    window = RateWindow.handed(rate, wall_now=1000.0)
    assert window.take_nowait()
    assert not window.take_nowait()
    assert window.next_start_at() == t0 + 2.0


async def _start_like_a_child(window: RateWindow, cost: float) -> float:
    """A job's start as the child makes it: at once if it may, else in turn."""
    if window.take_nowait(cost):
        return trio.current_time()
    return await window.take(cost)


async def test_a_costly_start_is_not_starved_by_cheap_ones_that_come_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Cheap jobs come every 0.2 s and fill the window by 0.8 s; the costly
    # one comes at 0.9 s. Each later cheap job would fit the unit the oldest
    # start frees, but waits behind the costly one.
    window = RateWindow(5, 1.0)
    t0 = trio.current_time()
    cheap: list[float] = []
    costly: list[float] = []

    async def costly_job() -> None:
        await trio.sleep_until(t0 + 0.9)
        costly.append(await _start_like_a_child(window, 5.0) - t0)

    async def cheap_job() -> None:
        cheap.append(await _start_like_a_child(window, 1.0) - t0)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(costly_job)
            for arrival in range(25):
                await trio.sleep_until(t0 + 0.2 * arrival)
                nursery.start_soon(cheap_job)
    assert costly == [pytest.approx(1.8)]
    assert sorted(cheap)[:5] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert min(sorted(cheap)[5:]) == pytest.approx(2.8)
    assert busiest_cost([(t, 1.0) for t in cheap] + [(costly[0], 5.0)], 1.0) <= 5


async def test_a_cancelled_first_in_line_lets_the_next_one_take(
    autojump_clock: trio.testing.MockClock,
) -> None:
    window = RateWindow(2, 1.0)
    t0 = trio.current_time()
    assert window.take_nowait(2.0)
    started: list[float] = []

    async def cheap_job() -> None:
        started.append(await window.take(1.0))

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            with trio.move_on_after(0.5) as costly:
                nursery.start_soon(cheap_job)
                await window.take(2.0, not_before=lambda: t0 + 10.0)
            nursery.start_soon(cheap_job)
    assert costly.cancelled_caught
    # Behind a waiter held until t0 + 10, nothing could start; once it left
    # the line, the cheap jobs share the window freed at t0 + 1.
    assert started == [t0 + 1.0, t0 + 1.0]
    assert not window.take_nowait()
