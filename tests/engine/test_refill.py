"""The claim that rides on the recorder's store step: one store round trip
per burst, the run's credits still bounding its jobs, and a job that one
step both finishes and claims again (a retry due at once) held anew."""

from __future__ import annotations

from collections import Counter
from typing import Any

from trio.testing import MockClock

from engine.core.engine import StartResult
from engine.testing import FailingStore, collect_until, jobs_of
from engine.testing.harness import open_fake_store
from protocols.events import RunDone
from protocols.lifecycle import JobState
from tests.conftest import FakeEngineOpener


class _Counting(FailingStore):
    """Counts the store steps of the hot path and the most jobs active at once."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.calls: Counter[str] = Counter()
        self.most_active = 0

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)
        if name not in ("claim_jobs", "apply", "apply_and_claim"):
            return call

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            result = await call(*args, **kwargs)
            active = (await self._store.counts("b")).active if name != "apply" else 0
            self.most_active = max(self.most_active, active)
            return result

        return counted


async def test_one_store_step_per_burst_within_the_credits(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with open_fake_store() as real:
        store = _Counting(real)
        async with fake_engine(store=store, concurrency=3, batch_size=10) as engine:
            await engine.create_batch("b", "sleep", jobs_of("sleep", [{"seconds": 1.0}] * 30))
            with engine.subscribe(["b"]) as sub:
                assert await engine.start("b") is StartResult.STARTED
                seen = await collect_until(sub)
    assert seen[-1].data == RunDone(batch_id="b", completed=30, failed=0)
    # The first claims fill the credits (13: two claims of at most 10);
    # every later job is claimed by the step that recorded the burst before
    # it. Ten bursts of three (concurrency 3, 1 s jobs): claimed separately,
    # they would take ten writes and nine claims at least. Once nothing is
    # left to claim, each of the last bursts (13 jobs held, so five at most)
    # is followed by one claim that finds nothing.
    assert store.calls["apply_and_claim"] >= 8
    assert sum(store.calls.values()) <= 10 + 2 + 5
    # The run's credits: its concurrency, plus a claim's worth prefetched.
    assert store.most_active <= 3 + 10


async def test_a_retry_due_at_once_is_claimed_by_the_step_that_records_it(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine(concurrency=2, job_backoff_seconds=0.0, job_max_attempts=3) as engine:
        payloads = [{"failTimes": 2}] * 4 + [{"failTimes": 5}] * 2
        batch_id, _ = await engine.create_batch(None, "flaky", jobs_of("flaky", payloads))
        with engine.subscribe([batch_id]) as sub:
            assert await engine.start(batch_id) is StartResult.STARTED
            seen = await collect_until(sub)
        page = await engine.list_jobs(batch_id)
    assert seen[-1].data == RunDone(batch_id=batch_id, completed=4, failed=2)
    assert Counter(e.event for e in seen)["job:retrying"] == 4 * 2 + 2 * 2
    assert Counter((j.state, j.attempts) for j in page.jobs) == {
        (JobState.COMPLETED, 3): 4,
        (JobState.FAILED, 3): 2,
    }
