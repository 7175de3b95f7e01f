"""A run cancelled without a stop (its nursery torn down, no drain) while
the store is away, on trio's MockClock with in-process children: its
shielded release of the held jobs is bounded by a lease."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from engine.core.bus import EventBus
from engine.core.pause import PauseSwitch
from engine.core.retry import StoreRetry
from engine.core.run_limits import RunLimits
from engine.core.runner import BatchRunner
from engine.errors import StoreError
from engine.jobs.registry import REGISTRY, load_job_modules
from engine.store.records import NewJob
from engine.supervisor.children import ChildSupervisor
from engine.testing import FailingStore, FakeSpawner, open_fake_store, trio_wall_clock

GRACE, LEASE = 5.0, 30.0

#: Long enough to tell a bounded release from an unbounded one. The store
#: then refuses instead (a ``StoreError`` ends any retry), so that an
#: unbounded release fails this test rather than hanging it.
_AN_HOUR = 3600.0


async def test_a_cancelled_run_gives_up_releasing_after_a_lease(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    load_job_modules(["engine.testing"])
    async with open_fake_store() as real, trio.open_nursery() as outside:
        store = FailingStore(real)
        await store.create_batch("b", "sleep")
        await store.add_jobs("b", [NewJob(type="sleep", payload={"seconds": 60.0})] * 4)
        async with trio.open_nursery() as nursery:
            runner = BatchRunner(
                batch_id="b",
                store=store,
                bus=EventBus(),
                supervisor=ChildSupervisor(
                    nursery, spawner=FakeSpawner(REGISTRY), warm=0, grace_seconds=GRACE
                ),
                limits=RunLimits(
                    concurrency=2,
                    batch_size=10,
                    prefetch=0,
                    lease_seconds=LEASE,
                    backoff_seconds=1.0,
                    batch_retries=0,
                ),
                owner="engine-1",
                gate=PauseSwitch(),
                clock=trio_wall_clock,
                retry=StoreRetry(),
            )
            await nursery.start(runner.run)
            await trio.sleep(1.0)
            assert (await real.counts("b")).active == 2
            store.fail()  # for good
            outside.start_soon(_refuse_after, store, _AN_HOUR)
            began = trio.current_time()
            nursery.cancel_scope.cancel()
        took = trio.current_time() - began
        outside.cancel_scope.cancel()
    # The child gets its grace, then the release waits one lease at most.
    assert took <= GRACE + LEASE
    assert "cannot release 2 jobs within a lease" in caplog.text
    assert "when their lease runs out" in caplog.text


async def _refuse_after(store: FailingStore, seconds: float) -> None:
    await trio.sleep(seconds)
    store.fail(error=StoreError)
