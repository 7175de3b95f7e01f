"""Per-type limits (``[types.NAME]``) held across the cluster, and the cost
that rate limits count, on ``MockClock``.

Two engines on one store are a cluster: here they share one in-memory store
that never leaves the Trio thread, and their children run in-process, so
every start time is exact. Starts are read from the events both engines
publish (``observe_events`` sees each in the publisher's call).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from engine.config.settings import RateLimit, Settings
from engine.config.sources import TypeOverrides
from engine.core.engine import Engine, JobRequest
from engine.core.startup import open_engine
from engine.errors import JobError
from engine.jobs.registry import REGISTRY
from engine.store import NewJob, Store
from engine.store.sqlite import open_sqlite_store
from engine.testing.fake_child import FakeSpawner
from engine.testing.harness import trio_wall_clock
from protocols.events import Event, JobUpdate
from protocols.lifecycle import JobState
from tests.engine.windows import busiest_cost


@asynccontextmanager
async def _cluster(n: int, **changes: Any) -> AsyncIterator[tuple[Store, list[Engine]]]:
    """``n`` fake engines (as ``open_fake_engine`` makes them) on one shared store."""
    assert isinstance(trio.lowlevel.current_clock(), MockClock), "take autojump_clock"
    base = {"rate_limit": RateLimit(count=0, per_seconds=60), "shutdown_grace_seconds": 5.0}
    settings = Settings(**{**base, "store_url": "sqlite:///:memory:", **changes})
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(
            open_sqlite_store(":memory:", clock=trio_wall_clock, threaded=False)
        )
        engines = [
            await stack.enter_async_context(
                open_engine(
                    settings, store=store, spawner=FakeSpawner(REGISTRY), clock=trio_wall_clock
                )
            )
            for _ in range(n)
        ]
        yield store, engines


class _Starts:
    """Every job start and end the engines publish, with its time."""

    def __init__(self, engines: Sequence[Engine]) -> None:
        self.starts: dict[str, float] = {}
        self.active: set[str] = set()
        self.peak = 0
        for engine in engines:
            engine.observe_events(self._see)

    def _see(self, event: Event) -> None:
        data = event.data
        if not isinstance(data, JobUpdate):
            return
        if data.status is JobState.ACTIVE:
            self.starts.setdefault(data.job_id, trio.current_time())
            self.active.add(data.job_id)
            self.peak = max(self.peak, len(self.active))
        else:
            self.active.discard(data.job_id)


async def _run_batches(engines: Sequence[Engine], batches: Sequence[list[JobRequest]]) -> float:
    """Create and start each batch on the engines in turn; wait for all; how long."""
    t0 = trio.current_time()
    ids = []
    for i, jobs in enumerate(batches):
        engine = engines[i % len(engines)]
        batch_id, _ = await engine.create_batch(None, "noop", jobs)
        ids.append((engine, batch_id))
        await engine.start(batch_id)
    for engine, batch_id in ids:
        await engine.wait_stopped(batch_id)
        assert (await engine.counts(batch_id)).completed == len(batches[0])
    return trio.current_time() - t0


async def test_two_engines_never_run_more_than_a_types_concurrency_together(
    autojump_clock: MockClock,
) -> None:
    types = {"sleep": TypeOverrides(concurrency=2)}
    async with _cluster(2, max_active_batches=2, concurrency=3, type_overrides=types) as (
        _,
        engines,
    ):
        seen = _Starts(engines)
        jobs = [JobRequest(type="sleep", payload={"seconds": 1.0}) for _ in range(4)]
        took = await _run_batches(engines, [jobs] * 4)
    assert len(seen.starts) == 16
    assert seen.peak == 2
    # 16 one-second jobs two at a time: 8 s, plus at most one slot poll per
    # hand-over from one engine to the other.
    assert 8.0 <= took <= 8.0 + 16 * 0.25


async def test_two_engines_share_a_types_rate_of_cost(autojump_clock: MockClock) -> None:
    types = {"noop": TypeOverrides(rate_limit=RateLimit(count=4, per_seconds=1.0))}
    async with _cluster(2, concurrency=4, type_overrides=types) as (_, engines):
        seen = _Starts(engines)
        jobs = [JobRequest(type="noop", cost=1 + i % 2) for i in range(8)]  # 12 of cost
        costs = {}
        took = await _run_batches(engines, [jobs, jobs])
        for engine in engines:
            for batch in await engine.list_batches():
                costs.update(
                    {j.job_id: j.cost for j in (await engine.list_jobs(batch.batch_id)).jobs}
                )
    assert busiest_cost([(t, costs[job]) for job, t in seen.starts.items()], 1.0) == 4
    # 24 of cost at 4 per second: the last start is 5 windows after the first
    # (each engine alone would have let twice as much through).
    assert took >= 5.0


async def test_the_batch_rate_counts_cost(fake_engine: Any, autojump_clock: MockClock) -> None:
    async with fake_engine(
        concurrency=8, rate_limit=RateLimit(count=4, per_seconds=1.0)
    ) as engine:
        seen = _Starts([engine])
        jobs = [JobRequest(cost=2.0) for _ in range(6)] + [JobRequest(cost=0.5) for _ in range(4)]
        await _run_batches([engine], [jobs])
        (batch,) = await engine.list_batches()
        costs = {j.job_id: j.cost for j in (await engine.list_jobs(batch.batch_id)).jobs}
    assert len(seen.starts) == 10
    # 14 of cost at 4 per second: at most two jobs of cost 2 in a window, and
    # the last start three windows after the first at the earliest.
    assert busiest_cost([(t, costs[job]) for job, t in seen.starts.items()], 1.0) <= 4
    starts = sorted(seen.starts.values())
    assert starts[-1] - starts[0] >= 3.0


async def test_a_dead_engines_slots_come_back_after_its_lease(autojump_clock: MockClock) -> None:
    types = {"noop": TypeOverrides(concurrency=2)}
    async with _cluster(1, lease_seconds=30.0, type_overrides=types) as (store, engines):
        # An engine that died holding both slots: nobody renews them.
        assert await store.take_slot("noop", "ghost-1", 2, 30.0)
        assert await store.take_slot("noop", "ghost-2", 2, 30.0)
        seen = _Starts(engines)
        t0 = trio.current_time()
        await _run_batches(engines, [[JobRequest(type="noop") for _ in range(3)]])
    assert min(seen.starts.values()) - t0 == pytest.approx(30.0, abs=0.5)


async def test_slots_held_while_jobs_run_are_renewed(autojump_clock: MockClock) -> None:
    types = {"sleep": TypeOverrides(concurrency=1)}
    async with _cluster(2, lease_seconds=3.0, type_overrides=types) as (_, engines):
        seen = _Starts(engines)
        # Jobs that outlive the lease many times: a slot that was not renewed
        # would let the other engine start its job meanwhile.
        jobs = [JobRequest(type="sleep", payload={"seconds": 10.0})]
        took = await _run_batches(engines, [jobs, jobs])
    assert seen.peak == 1
    assert took >= 20.0


@pytest.mark.parametrize(
    ("cost", "match"),
    [
        (5.0, r"cost 5 exceeds the batch rate limit EMBEDDING_RATE_LIMIT=4/1s"),
        (3.0, r"cost 3 exceeds the rate limit of type 'noop' \(\[types\.noop\] rate_limit=2/1s"),
        (0.0, r"cost must be a finite number > 0"),
        (float("nan"), r"cost must be a finite number > 0"),
    ],
)
async def test_a_job_costlier_than_a_limit_is_refused(
    fake_engine: Any, autojump_clock: MockClock, cost: float, match: str
) -> None:
    types = {"noop": TypeOverrides(rate_limit=RateLimit(count=2, per_seconds=1.0))}
    rate = RateLimit(count=4, per_seconds=1.0)
    async with fake_engine(rate_limit=rate, type_overrides=types) as engine:
        jobs = [JobRequest(type="echo", cost=4.0), JobRequest(type="noop", cost=cost)]
        with pytest.raises(JobError, match=f"job 1: {match}"):
            await engine.create_batch("b", "echo", jobs)
        assert await engine.list_batches() == []
        await engine.create_batch("b", "echo", [jobs[0], JobRequest(type="noop", cost=2.0)])
        with pytest.raises(JobError, match=match):
            await engine.add_jobs("b", jobs[1:])
        assert (await engine.counts("b")).total == 2


async def test_a_job_stored_before_a_limit_was_lowered_takes_a_whole_window(
    autojump_clock: MockClock,
) -> None:
    types = {"noop": TypeOverrides(rate_limit=RateLimit(count=2, per_seconds=1.0))}
    rate = RateLimit(count=4, per_seconds=1.0)
    async with _cluster(1, rate_limit=rate, type_overrides=types) as (store, (engine,)):
        seen = _Starts([engine])
        await engine.create_batch("b", "noop", [])
        # Costlier than both limits, as if written under higher ones.
        await store.add_jobs("b", [NewJob(type="noop", cost=9.0) for _ in range(3)])
        await engine.start("b")
        await engine.wait_stopped("b")
        assert (await engine.counts("b")).completed == 3
    starts = sorted(seen.starts.values())
    assert [t - starts[0] for t in starts] == [0.0, 1.0, 2.0]


async def test_a_types_rate_holds_when_jobs_would_wait_for_their_batchs_rate(
    autojump_clock: MockClock,
) -> None:
    # Each batch's window lets 2 jobs start per 2 s, its concurrency 6: a
    # job handed to its child at once would wait there for its batch's
    # window for several of the type's windows, and its type take would
    # leave the type's window before its start moved it. The second batch
    # starts just before the first one's second window, on the other
    # engine: its starts fall beside the first one's.
    types = {"noop": TypeOverrides(rate_limit=RateLimit(count=3, per_seconds=0.5))}
    rate = RateLimit(count=2, per_seconds=2.0)
    async with _cluster(2, concurrency=6, rate_limit=rate, type_overrides=types) as (_, engines):
        seen = _Starts(engines)
        batches = []
        for engine in engines:
            batch_id, _ = await engine.create_batch(None, "noop", [JobRequest()] * 8)
            await engine.start(batch_id)
            batches.append((engine, batch_id))
            await trio.sleep(1.9)
        for engine, batch_id in batches:
            await engine.wait_stopped(batch_id)
            assert (await engine.counts(batch_id)).completed == 8
    starts = [(t, 1.0) for t in seen.starts.values()]
    assert len(starts) == 16
    assert busiest_cost(starts, 0.5) <= 3


async def test_a_types_rate_holds_beside_jobs_waiting_in_the_child(
    autojump_clock: MockClock,
) -> None:
    # As above, with a job of a type with no limits of its own between
    # every two: such jobs go to the child at once and wait there for
    # their batch's window, so its room is what is left beside them.
    types = {"noop": TypeOverrides(rate_limit=RateLimit(count=3, per_seconds=0.5))}
    rate = RateLimit(count=2, per_seconds=2.0)
    async with _cluster(2, concurrency=6, rate_limit=rate, type_overrides=types) as (_, engines):
        seen = _Starts(engines)
        batches, rated = [], set()
        for engine in engines:
            jobs = [JobRequest(type="echo" if i % 3 == 2 else "noop") for i in range(12)]
            batch_id, added = await engine.create_batch(None, "noop", jobs)
            pairs = zip(added.job_ids, jobs, strict=True)
            rated.update(job_id for job_id, job in pairs if job.type == "noop")
            await engine.start(batch_id)
            batches.append((engine, batch_id))
            await trio.sleep(1.9)
        for engine, batch_id in batches:
            await engine.wait_stopped(batch_id)
            assert (await engine.counts(batch_id)).completed == 12
    assert len(seen.starts) == 24
    assert busiest_cost([(t, 1.0) for j, t in seen.starts.items() if j in rated], 0.5) <= 3
