"""Retries due at once (``job_backoff_seconds=0``) on trio's MockClock: a
run's own claim may take back a job whose failure the recorder has just
written but not yet let go of; the job must still be run to its end."""

from __future__ import annotations

from typing import Any

import trio

from engine.store import Store
from engine.testing import collect_until, jobs_of, open_fake_store
from protocols.lifecycle import JobState
from tests.conftest import FakeEngineOpener


class _LateReplies:
    """A store whose outcome writes answer late and whose claims start
    late: a claim the dispatcher makes while the recorder writes a burst
    runs after that write and before the recorder sees its reply."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def claim_jobs(self, *args: Any, **kwargs: Any) -> Any:
        await trio.sleep(0.001)
        return await self._store.claim_jobs(*args, **kwargs)

    async def apply(self, *args: Any, **kwargs: Any) -> Any:
        states = await self._store.apply(*args, **kwargs)
        await trio.sleep(0.002)
        return states

    async def apply_and_claim(self, *args: Any, **kwargs: Any) -> Any:
        step = await self._store.apply_and_claim(*args, **kwargs)
        await trio.sleep(0.002)
        return step


async def test_a_retry_claimed_back_before_the_recorder_lets_go_still_runs(
    fake_engine: FakeEngineOpener, autojump_clock: object
) -> None:
    jobs = 12
    async with open_fake_store() as inner:
        store = _LateReplies(inner)
        async with fake_engine(
            store=store,
            concurrency=4,
            batch_size=1,
            job_max_attempts=3,
            job_backoff_seconds=0,
        ) as engine:
            payloads = [{"failTimes": 2, "n": i} for i in range(jobs)]
            batch_id, _ = await engine.create_batch(None, "flaky", jobs_of("flaky", payloads))
            with trio.fail_after(600), engine.subscribe([batch_id]) as sub:
                await engine.start(batch_id)
                seen = await collect_until(sub)
            counts = await engine.counts(batch_id)
            page = await engine.list_jobs(batch_id, limit=jobs)
    assert (counts.pending, counts.active, counts.completed, counts.failed) == (0, 0, jobs, 0)
    assert [(j.state, j.attempts) for j in page.jobs] == [(JobState.COMPLETED, 3)] * jobs
    assert sum(1 for e in seen if e.event == "job:retrying") == 2 * jobs
    assert (seen[-1].data.completed, seen[-1].data.failed) == (jobs, 0)
