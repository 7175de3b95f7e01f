"""An engine on Redis outlives its ``redis-server`` restarting mid-run: real
children, a real server killed and started again on the same port."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import pytest
import trio

from engine.testing import collect_until, jobs_of, open_test_engine
from protocols.events import Event, RunDone
from protocols.lifecycle import JobState
from tests.redis_server import FAILED_CONNECTS_LEAK, free_port, running_redis

JOBS = 40


def _finished(event: Event) -> bool:
    return event.event == "job:progress" and event.data.status in (
        JobState.COMPLETED,
        JobState.FAILED,
    )


@FAILED_CONNECTS_LEAK
@pytest.mark.usefixtures("failed_connections")
async def test_every_job_completes_once_across_a_redis_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    payloads = [{"seconds": 0.05}] * JOBS
    with trio.fail_after(90), contextlib.ExitStack() as servers:
        first = servers.enter_context(running_redis(data, port, persistent=True))
        async with open_test_engine(
            tmp_path, store_url=f"redis://127.0.0.1:{port}/0", concurrency=4
        ) as engine:
            batch_id, _ = await engine.create_batch(None, "sleep", jobs_of("sleep", payloads))
            with engine.subscribe([batch_id]) as sub:
                await engine.start(batch_id)
                before = await collect_until(sub, _finished)
                first.kill()
                first.wait()
                await trio.sleep(1.0)
                healthy_while_down = await engine.store_healthy()
                servers.enter_context(running_redis(data, port, persistent=True))
                after = await collect_until(sub, lambda e: e.event in ("done", "error"))
            await engine.wait_stopped(batch_id)
            healthy_after = await engine.store_healthy()
            page = await engine.list_jobs(batch_id, limit=JOBS)
    seen = before + after
    assert not healthy_while_down and healthy_after
    assert [e.event for e in seen].count("error") == 0
    assert seen[-1].data == RunDone(batch_id=batch_id, completed=JOBS, failed=0)
    finished = Counter(e.data.job_id for e in seen if _finished(e))
    assert finished == Counter({job.job_id: 1 for job in page.jobs})
    assert {(job.state, job.attempts) for job in page.jobs} == {(JobState.COMPLETED, 1)}
    assert caplog.text.count("the store is unavailable") == 1
    assert caplog.text.count("the store is back") == 1
    # Far shorter than the lease (30 s): the run was never fenced.
    assert "before another engine may take it over" not in caplog.text


@FAILED_CONNECTS_LEAK
@pytest.mark.usefixtures("failed_connections")
async def test_redis_away_past_the_lease_fences_the_run_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down for 6 s of a 3 s lease: the run stops ``fenced`` (its
    child killed) while Redis is away; once it is back, what the run held
    is pending again without an attempt used, and the engine resumes the
    run by itself: every job completes once."""
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    payloads = [{"seconds": 0.2}] * JOBS
    with trio.fail_after(90), contextlib.ExitStack() as servers:
        first = servers.enter_context(running_redis(data, port, persistent=True))
        async with open_test_engine(
            tmp_path, store_url=f"redis://127.0.0.1:{port}/0", concurrency=4, lease_seconds=3.0
        ) as engine:
            batch_id, _ = await engine.create_batch(None, "sleep", jobs_of("sleep", payloads))
            with engine.subscribe([batch_id]) as sub:
                await engine.start(batch_id)
                before = await collect_until(sub, _finished)
                first.kill()
                first.wait()
                killed_at = trio.current_time()
                # Its last renewal went out at most a second (a third of the
                # lease) before: fenced 2.5 s after it.
                with trio.fail_after(2.5 + 1.0):
                    await engine.wait_stopped(batch_id)
                stopped_after = trio.current_time() - killed_at
                await trio.sleep(6.0 - stopped_after)
                servers.enter_context(running_redis(data, port, persistent=True))
                # The events reach subscribers through Redis: the fenced
                # run's end comes once it is back, then the resumed run's.
                fenced = await collect_until(sub, lambda e: e.event in ("done", "error"))
                after = await collect_until(sub, lambda e: e.event in ("done", "error"))
            await engine.wait_stopped(batch_id)
            page = await engine.list_jobs(batch_id, limit=JOBS)
    assert 1.5 <= stopped_after <= 2.5 + 1.0
    assert fenced[-1].event == "done" and fenced[-1].data.reason == "fenced"
    assert after[-1].event == "done" and after[-1].data.reason is None
    assert "before another engine may take it over" in caplog.text
    finished = Counter(e.data.job_id for e in before + fenced + after if _finished(e))
    assert finished == Counter({job.job_id: 1 for job in page.jobs})
    assert {(job.state, job.attempts) for job in page.jobs} == {(JobState.COMPLETED, 1)}
