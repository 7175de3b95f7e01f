"""A silent child against real children: a ``hang`` blocks the child's
loop, so after ``CHILD_SILENCE_SECONDS`` without a word (not even a
``Pong``) the child is killed and its batch gets its ``error``, while the
engine stays healthy and nothing is lost; ``def`` handlers that say
nothing for longer, in their threads, are left alone."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from engine.testing import collect_until, jobs_of, open_test_server
from protocols.lifecycle import JobState

LIMIT = 2.0


async def test_a_hung_child_gets_its_error_and_the_engine_stays_healthy(
    tmp_path: Path,
) -> None:
    async with (
        open_test_server(
            tmp_path,
            child_silence_seconds=LIMIT,
            concurrency=1,
            batch_retries=1,
            job_max_attempts=1,
        ) as (engine, url),
        httpx.AsyncClient(base_url=url) as client,
    ):
        jobs = jobs_of("hang", [{"seconds": 600}]) + jobs_of("noop", [None] * 3)
        batch_id, added = await engine.create_batch(None, "hang", jobs)
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            error = (await collect_until(sub, lambda e: e.event == "error"))[-1]
            health = await client.get("/health")
            rest = await collect_until(sub, lambda e: e.event in ("done", "error"))
        page = await engine.list_jobs(batch_id)
        counts = await engine.counts(batch_id)
    assert f"sent nothing for {LIMIT:g} s" in error.data.error and error.data.restarting
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert rest[-1].event == "done"
    states = {job.job_id: (job.state, job.attempts) for job in page.jobs}
    assert states.pop(added.job_ids[0]) == (JobState.FAILED, 1)  # started: counted
    assert set(states.values()) == {(JobState.COMPLETED, 1)} and len(states) == 3
    assert counts.pending == counts.active == 0


async def test_def_handlers_quiet_for_longer_than_the_limit_are_left_alone(
    tmp_path: Path,
) -> None:
    async with open_test_server(
        tmp_path, child_silence_seconds=LIMIT, concurrency=3, batch_retries=0
    ) as (engine, _):
        jobs = jobs_of("sleep-sync", [{"seconds": LIMIT * 3}] * 2)
        jobs += jobs_of("cpu", [{"iterations": 2_000_000}])
        batch_id, _ = await engine.create_batch(None, "sleep-sync", jobs)
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
    assert [e.event for e in seen].count("error") == 0
    assert seen[-1].event == "done" and seen[-1].data.completed == 3
