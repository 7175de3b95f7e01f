"""Per-type limits across a cluster, end to end: two engines with real
children on one SQLite file, real time with generous bounds; and a job's
cost over HTTP.

Starts and ends are read from the events both engines publish
(``observe_events`` sees each in the publisher's call, so the two engines'
events come in the order they happened). A start is published after an IPC
hop from the child, so rate windows allow that hop's jitter, as the batch
rate's end-to-end test does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from engine.config.settings import RateLimit
from engine.config.sources import TypeOverrides
from engine.core.engine import Engine
from engine.testing import jobs_of, open_test_engine, open_test_server
from protocols.events import Event, JobUpdate
from protocols.lifecycle import JobState
from tests.engine.windows import busiest_cost


@asynccontextmanager
async def _two_engines(tmp_path: Path, **changes: Any) -> AsyncIterator[list[Engine]]:
    """Two engines on the one store file in ``tmp_path``."""
    async with (
        open_test_engine(tmp_path, **changes) as one,
        open_test_engine(tmp_path, **changes) as two,
    ):
        yield [one, two]


class _Starts:
    """The jobs the engines report active, when each started (as the event
    came, and the handler's ``startedAt``), the first start, and the peak."""

    def __init__(self, engines: Sequence[Engine]) -> None:
        self.starts: dict[str, float] = {}
        self.started_at: dict[str, float] = {}
        self.first = trio.Event()
        self.active: set[str] = set()
        self.peak = 0
        for engine in engines:
            engine.observe_events(self._see)

    def _see(self, event: Event) -> None:
        if not isinstance(event.data, JobUpdate):
            return
        if event.data.status is JobState.ACTIVE:
            self.starts.setdefault(event.data.job_id, trio.current_time())
            if event.data.started_at is not None:
                self.started_at.setdefault(event.data.job_id, event.data.started_at)
                self.first.set()
            self.active.add(event.data.job_id)
            self.peak = max(self.peak, len(self.active))
        else:
            self.active.discard(event.data.job_id)


async def _run(engines: Sequence[Engine], type_: str, payloads: list[Any], batches: int) -> None:
    started = []
    for i in range(batches):
        engine = engines[i % len(engines)]
        batch_id, _ = await engine.create_batch(None, type_, jobs_of(type_, payloads))
        await engine.start(batch_id)
        started.append((engine, batch_id))
    for engine, batch_id in started:
        await engine.wait_stopped(batch_id)
        assert (await engine.counts(batch_id)).completed == len(payloads)


async def test_two_engines_never_run_more_than_a_types_concurrency(tmp_path: Path) -> None:
    types = {"sleep": TypeOverrides(concurrency=2)}
    async with _two_engines(
        tmp_path, max_active_batches=2, concurrency=3, type_overrides=types
    ) as engines:
        seen = _Starts(engines)
        with trio.fail_after(60):
            await _run(engines, "sleep", [{"seconds": 0.2}] * 3, batches=4)
    assert len(seen.starts) == 12
    assert seen.peak == 2


async def test_two_engines_share_a_types_rate(tmp_path: Path) -> None:
    types = {"noop": TypeOverrides(rate_limit=RateLimit(count=4, per_seconds=1.0))}
    async with _two_engines(tmp_path, concurrency=4, type_overrides=types) as engines:
        seen = _Starts(engines)
        with trio.fail_after(60):
            await _run(engines, "noop", [None] * 8, batches=2)
    starts = sorted(seen.starts.values())
    assert len(starts) == 16
    # 16 starts at 4 per second need three full windows after the first
    # (each engine counting alone would have needed one).
    assert starts[-1] - starts[0] >= 2.9
    for i, t in enumerate(starts):
        assert sum(1 for u in starts[i:] if u - t < 0.9) <= 4


async def test_a_types_rate_holds_at_handler_starts_under_batch_rates(tmp_path: Path) -> None:
    # Each batch may start 2 jobs per 2 s and runs up to 6 at once: a job
    # of the type would wait in its child for its batch's window longer
    # than the type's window, unless the engine hands it off only once it
    # can start. The second batch starts on the other engine 1.5 s after
    # the first one's first start, so both batches' next starts come
    # within one window of the type.
    types = {"noop": TypeOverrides(rate_limit=RateLimit(count=3, per_seconds=1.0))}
    rate = RateLimit(count=2, per_seconds=2.0)
    async with _two_engines(
        tmp_path, concurrency=6, rate_limit=rate, type_overrides=types
    ) as engines:
        seen = _Starts(engines)
        batches = []
        with trio.fail_after(60):
            for engine in engines:
                if batches:
                    await seen.first.wait()
                    await trio.sleep(1.5)
                batch_id, _ = await engine.create_batch(None, "noop", jobs_of("noop", [None] * 8))
                await engine.start(batch_id)
                batches.append((engine, batch_id))
            for engine, batch_id in batches:
                await engine.wait_stopped(batch_id)
                assert (await engine.counts(batch_id)).completed == 8
    started_at = [(t, 1.0) for t in seen.started_at.values()]
    assert len(started_at) == 16
    # On the handlers' own start times, short by at most a store call's
    # latency: a take moved to its start lands where the store's clock put
    # it plus the job's wait since the hand-off, read just before that call.
    assert busiest_cost(started_at, 0.99) <= 3


async def test_a_job_costlier_than_the_rate_limit_is_refused(tmp_path: Path) -> None:
    rate = RateLimit(count=10, per_seconds=60.0)
    async with (
        open_test_server(tmp_path, rate_limit=rate) as (_, url),
        httpx.AsyncClient(base_url=url) as client,
    ):
        body = {"batchId": "b", "type": "noop", "jobs": [{"cost": 4}, {"cost": 10.5}]}
        refused = await client.post("/api/batches", json=body)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid-job"
        assert "cost 10.5 exceeds the batch rate limit EMBEDDING_RATE_LIMIT=10" in error["message"]
        assert (await client.get("/api/batches/b")).status_code == 404

        body["jobs"] = [{"cost": 4}, {}]
        assert (await client.post("/api/batches", json=body)).status_code == 201
        jobs = (await client.get("/api/batches/b/jobs")).json()["jobs"]
        assert [job["cost"] for job in jobs] == [4, 1]
