"""The batch's rate limit end to end, kept by real child processes where
their handlers start: jobs are prefetched under it, each job's cost counts,
and a child that replaces another mid-run (recycled after a few jobs) is
handed the run's recent starts, so no window of handler starts
(``startedAt``, the children's clock) holds more than the limit's cost."""

from __future__ import annotations

from pathlib import Path

import trio

from engine.config.settings import RateLimit
from engine.core.values import JobRequest
from engine.testing import collect_until, open_test_engine
from protocols.lifecycle import JobState
from tests.engine.windows import busiest_cost


async def test_prefetched_jobs_start_within_the_window_across_a_replaced_child(
    tmp_path: Path,
) -> None:
    rate = RateLimit(count=4, per_seconds=1.0)
    async with open_test_engine(
        tmp_path, concurrency=2, rate_limit=rate, max_jobs_per_child=5
    ) as engine:
        jobs = [JobRequest(type="pid", cost=2.0 if i % 4 == 0 else 1.0) for i in range(16)]
        batch_id, added = await engine.create_batch(None, "pid", jobs)
        costs = dict(zip(added.job_ids, (job.cost for job in jobs), strict=True))
        peak_active = 0

        async def watch_active() -> None:
            nonlocal peak_active
            while True:
                peak_active = max(peak_active, (await engine.counts(batch_id)).active)
                await trio.sleep(0.02)

        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_active)
                await engine.start(batch_id)
                seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
                nursery.cancel_scope.cancel()
        stored = (await engine.list_jobs(batch_id)).jobs
    assert seen[-1].event == "done" and seen[-1].data.completed == 16
    starts = [
        (e.data.started_at, costs[e.data.job_id])
        for e in seen
        if e.event == "job:progress" and e.data.status is JobState.ACTIVE
    ]
    assert len(starts) == 16
    # 20 of cost at 4 per second: strict on handler starts, in every child.
    assert busiest_cost(starts, 1.0) <= 4
    times = sorted(at for at, _ in starts)
    assert times[-1] - times[0] >= 4.0
    # Several children ran the batch, and more jobs were held (claimed,
    # sent on) than the concurrency: prefetched into the child.
    assert len({job.result for job in stored}) >= 2
    assert peak_active > 2
