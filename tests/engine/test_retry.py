"""The store retry policy on trio's MockClock: its backoff, its patience,
what it retries and what it logs."""

from __future__ import annotations

import itertools

import pytest
import trio
from trio.testing import MockClock

from engine.core.retry import Backoff, Patience, StoreRetry
from engine.errors import StoreError, StoreUnavailable


class _Step:
    """Fails ``failures`` times with ``error``, then answers; notes each attempt's time."""

    def __init__(self, failures: float, error: type[StoreError] = StoreUnavailable) -> None:
        self.failures = failures
        self.error = error
        self.attempts: list[float] = []

    async def __call__(self) -> str:
        await trio.lowlevel.checkpoint()
        self.attempts.append(trio.current_time())
        if len(self.attempts) <= self.failures:
            raise self.error("the store is away (simulated)")
        return "taken"


def test_the_backoff_doubles_up_to_its_cap() -> None:
    delays = list(itertools.islice(Backoff().delays(), 9))
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])


async def test_a_step_is_retried_with_backoff_until_it_succeeds(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    retry = StoreRetry()
    step = _Step(failures=8)
    start = trio.current_time()
    assert await retry.call(step) == "taken"
    waits = [b - a for a, b in itertools.pairwise(step.attempts)]
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
    assert step.attempts[0] == start
    assert retry.store_available
    assert caplog.text.count("the store is unavailable") == 1
    assert caplog.text.count("the store is back after 16.3 s") == 1


async def test_a_refusal_is_not_retried(autojump_clock: MockClock) -> None:
    retry = StoreRetry()
    step = _Step(failures=1, error=StoreError)
    with pytest.raises(StoreError):
        await retry.call(step)
    assert len(step.attempts) == 1
    assert retry.store_available  # a refusal is not an outage


async def test_patience_cuts_the_wait_short_and_makes_one_last_attempt(
    autojump_clock: MockClock,
) -> None:
    retry = StoreRetry()
    patience = Patience()
    step = _Step(failures=float("inf"))
    start = trio.current_time()

    async def stop_later() -> None:
        await trio.sleep(17.0)
        patience.end_at(trio.current_time() + 1.5)
        patience.end_at(trio.current_time() + 60)  # a later deadline changes nothing

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_later)
        with pytest.raises(StoreUnavailable):
            await retry.call(step, patience=patience)
    # Attempts at 0, 0.1, 0.3, ..., 16.3, then a 5 s wait cut short at 18.5.
    assert step.attempts[-1] - start == pytest.approx(18.5)
    assert step.attempts[-2] - start == pytest.approx(16.3)
    assert not retry.store_available


async def test_an_exhausted_patience_still_gets_one_attempt(autojump_clock: MockClock) -> None:
    patience = Patience()
    patience.end_at(trio.current_time())
    assert patience.exhausted
    assert await StoreRetry().call(_Step(failures=0), patience=patience) == "taken"
    failing = _Step(failures=1)
    with pytest.raises(StoreUnavailable):
        await StoreRetry().call(failing, patience=patience)
    assert len(failing.attempts) == 1


async def test_cancellation_between_attempts_ends_the_retry(autojump_clock: MockClock) -> None:
    step = _Step(failures=float("inf"))
    with trio.move_on_after(1.0) as scope:
        await StoreRetry().call(step)
    assert scope.cancelled_caught
    assert len(step.attempts) == 4  # at 0, 0.1, 0.3 and 0.7; the next is past the cut
