"""A batch held back by its job type's limits (``[types.NAME]`` concurrency
and rate, kept in Redis) outlives its ``redis-server`` restarting: real
children, a real server killed and started again on the same port while
jobs wait at the type's gate."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import pytest
import trio

from engine.config.settings import RateLimit
from engine.config.sources import TypeOverrides
from engine.testing import collect_until, jobs_of, open_test_engine
from protocols.events import Event, JobUpdate, RunDone
from protocols.lifecycle import JobState
from tests.redis_server import FAILED_CONNECTS_LEAK, free_port, running_redis

JOBS = 24
TYPE_CONCURRENCY = 2


def _finished(event: Event) -> bool:
    return event.event == "job:progress" and event.data.status in (
        JobState.COMPLETED,
        JobState.FAILED,
    )


class _Peak:
    """The most jobs the engine reported running at once."""

    def __init__(self) -> None:
        self.active: set[str] = set()
        self.peak = 0

    def see(self, event: Event) -> None:
        if not isinstance(event.data, JobUpdate):
            return
        if event.data.status is JobState.ACTIVE:
            self.active.add(event.data.job_id)
            self.peak = max(self.peak, len(self.active))
        else:
            self.active.discard(event.data.job_id)


@FAILED_CONNECTS_LEAK
@pytest.mark.usefixtures("failed_connections")
async def test_a_type_limited_batch_completes_every_job_once_across_a_redis_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two jobs of the type at a time, at most 10 starts a second, for a
    batch allowed 4 at a time: while Redis is away for 2 s, jobs are
    waiting at the type's slots and window, and the run waits with them."""
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    gate = TypeOverrides(
        concurrency=TYPE_CONCURRENCY, rate_limit=RateLimit(count=10, per_seconds=1.0)
    )
    payloads = [{"seconds": 0.2}] * JOBS
    with trio.fail_after(90), contextlib.ExitStack() as servers:
        first = servers.enter_context(running_redis(data, port, persistent=True))
        async with open_test_engine(
            tmp_path,
            store_url=f"redis://127.0.0.1:{port}/0",
            concurrency=4,
            type_overrides={"sleep": gate},
        ) as engine:
            running = _Peak()
            engine.observe_events(running.see)
            batch_id, _ = await engine.create_batch(None, "sleep", jobs_of("sleep", payloads))
            with engine.subscribe([batch_id]) as sub:
                await engine.start(batch_id)
                before = await collect_until(sub, _finished)
                first.kill()
                first.wait()
                await trio.sleep(2.0)
                healthy_while_down = await engine.store_healthy()
                servers.enter_context(running_redis(data, port, persistent=True))
                after = await collect_until(sub, lambda e: e.event in ("done", "error"))
            await engine.wait_stopped(batch_id)
            healthy_after = await engine.store_healthy()
            page = await engine.list_jobs(batch_id, limit=JOBS)
    seen = before + after
    assert not healthy_while_down and healthy_after
    assert [e.event for e in seen].count("error") == 0
    assert "the run failed" not in caplog.text
    assert seen[-1].data == RunDone(batch_id=batch_id, completed=JOBS, failed=0)
    finished = Counter(e.data.job_id for e in seen if _finished(e))
    assert finished == Counter({job.job_id: 1 for job in page.jobs})
    assert {(job.state, job.attempts) for job in page.jobs} == {(JobState.COMPLETED, 1)}
    # The type's slots outlived the restart (Redis kept them): never more
    # of its jobs at once than it allows.
    assert running.peak == TYPE_CONCURRENCY
    assert caplog.text.count("the store is unavailable") == 1
    assert caplog.text.count("the store is back") == 1
    # Far shorter than the lease (30 s): the run was never fenced.
    assert "before another engine may take it over" not in caplog.text
