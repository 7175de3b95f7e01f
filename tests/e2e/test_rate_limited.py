"""``RateLimited`` end to end: real children on SQLite and Redis, real time
with generous bounds. Only lower bounds are asserted on time: a hold must
last at least what the handler asked."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from engine.config.settings import RateLimit
from engine.config.sources import TypeOverrides
from engine.core.engine import Engine
from engine.core.values import JobRequest
from engine.testing import collect_until, open_test_engine, open_test_server
from protocols.events import Event, JobUpdate, RateLimitedJob, RunDone
from protocols.lifecycle import JobState
from tests.e2e.helpers import open_ws, read_ws


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'batchyard.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


def _raising(kind: str, times: int, retry_after: float) -> JobRequest:
    return JobRequest(type=kind, payload={"times": times, "retryAfter": retry_after})


def _starts(events: list[Event], batch_id: str) -> list[tuple[float, str]]:
    return sorted(
        (e.data.started_at, e.data.job_id)
        for e in events
        if isinstance(e.data, JobUpdate)
        and e.data.batch_id == batch_id
        and e.data.started_at is not None
    )


def _observe(engine: Engine) -> list[Event]:
    seen: list[Event] = []
    engine.observe_events(seen.append)
    return seen


@pytest.mark.parametrize("kind", ["rate-limited", "rate-limited-sync"])
async def test_a_rate_limited_job_comes_back_and_its_batch_waits(
    tmp_path: Path, store_url: str, kind: str
) -> None:
    async with open_test_engine(tmp_path, store_url=store_url, concurrency=1) as engine:
        seen = _observe(engine)
        jobs = [_raising(kind, times=2, retry_after=0.4), *[JobRequest(type="noop")] * 3]
        batch_id, _ = await engine.create_batch(None, "noop", jobs)
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            done = (await collect_until(sub))[-1].data
        (raising, *_) = (await engine.list_jobs(batch_id)).jobs
    assert isinstance(done, RunDone) and (done.completed, done.failed) == (4, 0)
    assert (raising.state, raising.attempts, raising.result) == (JobState.COMPLETED, 1, 2)
    holds = [e.data for e in seen if isinstance(e.data, RateLimitedJob)]
    assert [(h.job_id, h.retry_after) for h in holds] == [(raising.job_id, 0.4)] * 2
    starts = _starts(seen, batch_id)
    assert len(starts) == 6
    # One job at a time: whatever starts after a start that raised waits the hold.
    raised = [at for at, job_id in starts if job_id == raising.job_id][:2]
    for at in raised:
        (next_at, _) = next(start for start in starts if start[0] > at)
        assert next_at >= at + 0.4


async def test_a_type_with_a_rate_is_held_for_its_other_batches(
    tmp_path: Path, store_url: str
) -> None:
    # Whether another type goes on meanwhile is timed exactly on a mock clock
    # (tests/engine/test_throttle.py); here a child's start-up would blur it.
    types = {"rate-limited": TypeOverrides(rate_limit=RateLimit(count=100, per_seconds=1.0))}
    async with open_test_engine(
        tmp_path, store_url=store_url, max_active_batches=2, type_overrides=types
    ) as engine:
        seen = _observe(engine)
        a, _ = await engine.create_batch(None, "noop", [_raising("rate-limited", 1, 1.0)])
        b, _ = await engine.create_batch(None, "noop", [_raising("rate-limited", 0, 0)])
        with trio.fail_after(60), engine.subscribe([a, b]) as sub:
            await engine.start(a)
            await collect_until(sub, lambda e: e.event == "job:rate-limited")
            await engine.start(b)
            ends = 0
            async for event in sub:
                ends += event.event == "done"
                if ends == 2:
                    break
    (hold,) = [e.data for e in seen if isinstance(e.data, RateLimitedJob)]
    assert hold.type_wide
    raised_at = _starts(seen, a)[0][0]
    ((b_start, _),) = _starts(seen, b)
    assert b_start >= raised_at + 1.0


async def test_subscribers_and_metrics_see_the_hold(tmp_path: Path) -> None:
    async with (
        open_test_server(tmp_path) as (_, url),
        httpx.AsyncClient(base_url=url) as client,
    ):
        body = {
            "batchId": "api",
            "type": "rate-limited",
            "jobs": [{"payload": {"times": 1, "retryAfter": 0.2}}],
        }
        assert (await client.post("/api/batches", json=body)).status_code == 201
        with trio.fail_after(60):
            async with open_ws(url, "batchId=api") as ws:
                assert (await client.post("/api/jobs/process/all/api")).status_code == 200
                frames = await read_ws(ws)
        metrics = (await client.get("/metrics")).text
    (hold,) = [f.data for f in frames if f.event == "job:rate-limited"]
    assert isinstance(hold, RateLimitedJob)
    assert (hold.batch_id, hold.type, hold.retry_after) == ("api", "rate-limited", 0.2)
    terminal = [f.data for f in frames if isinstance(f.data, JobUpdate) and f.data.finished]
    assert [(u.status, u.attempt) for u in terminal] == [(JobState.COMPLETED, 1)]
    assert 'batchyard_jobs_rate_limited_total{type="rate-limited"} 1.0' in metrics.splitlines()
