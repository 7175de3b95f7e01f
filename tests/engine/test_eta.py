"""``EtaEstimator`` on ``MockClock(autojump_threshold=0)``: time moves only
when the test sleeps; then a rate-limited run's ``etaSeconds`` on the fake
engine."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from engine.config.settings import RateLimit
from engine.core.eta import EtaEstimator
from engine.testing import collect_until, jobs_of
from tests.conftest import FakeEngineOpener


async def test_unknown_without_a_limit_until_a_job_finishes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    eta = EtaEstimator(starts_per_second=None)
    eta.restart(0)
    assert eta.estimate(10) is None
    await trio.sleep(2)
    assert eta.estimate(10) is None
    eta.observe(4)  # 4 jobs in 2 s: 2 per second
    assert eta.estimate(10) == 5.0
    assert eta.estimate(0) == 0.0


async def test_the_rate_limit_bounds_it_before_anything_finishes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    eta = EtaEstimator(starts_per_second=20 / 60)
    eta.restart(0)
    assert eta.estimate(10) == 30.0


async def test_the_slower_bound_wins(autojump_clock: trio.testing.MockClock) -> None:
    limited = EtaEstimator(starts_per_second=1.0)
    limited.restart(0)
    await trio.sleep(1)
    limited.observe(10)  # a burst of 10 in 1 s; the limit allows 1/s from now on
    assert limited.estimate(20) == 20.0
    slow = EtaEstimator(starts_per_second=100.0)
    slow.restart(0)
    await trio.sleep(4)
    slow.observe(2)  # half a job per second, far below the limit
    assert slow.estimate(20) == 40.0


async def test_a_stalled_run_sees_its_estimate_grow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    eta = EtaEstimator(starts_per_second=None)
    eta.restart(0)
    await trio.sleep(1)
    eta.observe(5)
    before = eta.estimate(5)
    await trio.sleep(4)  # nothing finishes: 5 jobs in 5 s now
    after = eta.estimate(5)
    assert before == 1.0 and after == 5.0


async def test_the_pace_is_measured_over_the_window_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    eta = EtaEstimator(starts_per_second=None, window_seconds=10)
    eta.restart(0)
    for finished in range(1, 11):  # 10 jobs a second for 10 s
        await trio.sleep(1)
        eta.observe(finished * 10)
    for finished in range(1, 21):  # then 1 job a second
        await trio.sleep(1)
        eta.observe(100 + finished)
    # The window holds only the slow part (about 1/s), not the fast start.
    assert eta.estimate(10) == pytest.approx(10.0, abs=1.1)


async def test_restart_forgets_the_last_run(autojump_clock: trio.testing.MockClock) -> None:
    eta = EtaEstimator(starts_per_second=None)
    eta.restart(0)
    await trio.sleep(1)
    eta.observe(100)
    eta.restart(100)
    assert eta.estimate(10) is None


def test_a_rate_or_window_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="starts_per_second"):
        EtaEstimator(starts_per_second=0)
    with pytest.raises(ValueError, match="window_seconds"):
        EtaEstimator(starts_per_second=None, window_seconds=0)


async def test_a_rate_limited_run_reports_its_eta_counting_down(
    fake_engine: FakeEngineOpener, autojump_clock: trio.testing.MockClock
) -> None:
    # 2 starts per second, 10 quick jobs: about 5 s in all, 0 at the end.
    async with fake_engine(rate_limit=RateLimit(count=2, per_seconds=1.0)) as engine:
        batch_id, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None] * 10))
        assert engine.eta_seconds(batch_id) is None  # not running
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            events = await collect_until(sub)
            idle = engine.eta_seconds(batch_id)
    etas = [e.data.eta_seconds for e in events if e.event == "processing:progress"]
    assert len(etas) >= 3 and None not in etas
    assert etas[-1] == 0.0
    assert all(later <= earlier for earlier, later in itertools.pairwise(etas))
    assert etas[0] >= 3.0  # 8 or more jobs left at 2 per second
    assert idle is None


async def test_a_running_batch_has_an_eta_while_it_runs(
    fake_engine: FakeEngineOpener, autojump_clock: trio.testing.MockClock
) -> None:
    async with fake_engine(rate_limit=RateLimit(count=1, per_seconds=2.0)) as engine:
        batch_id, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None] * 6))
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            await collect_until(sub, lambda e: e.event == "processing:progress")
            during = engine.eta_seconds(batch_id)
            await engine.cancel(batch_id)
            await collect_until(sub)
    assert during is not None and 6.0 <= during <= 10.0  # 5 left at one per 2 s
