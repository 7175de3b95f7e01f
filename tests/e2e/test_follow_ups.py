"""``ctx.enqueue`` end to end: real children, SQLite and Redis, ``async def``
and ``def`` handlers, a flow across batches, and a crash after enqueueing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from engine.core.engine import Engine
from engine.core.values import JobRequest
from engine.testing import collect_until, open_test_engine
from protocols.events import Event, RunDone, RunError
from protocols.lifecycle import JobState


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'batchyard.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


def _fan_out(kind: str, payloads: list[Any], **extra: Any) -> JobRequest:
    return JobRequest(type=kind, payload={"type": "echo", "payloads": payloads, **extra})


async def _states(engine: Engine, batch_id: str) -> list[tuple[str, Any, JobState]]:
    page = await engine.list_jobs(batch_id, limit=1000)
    return [(job.type, job.payload, job.state) for job in page.jobs]


@pytest.mark.parametrize("kind", ["fan-out", "fan-out-sync"])
async def test_handlers_add_jobs_that_their_running_batch_runs(
    tmp_path: Path, store_url: str, kind: str
) -> None:
    payloads = [[i, 2**70 + i] for i in range(5)]
    async with open_test_engine(tmp_path, store_url=store_url, concurrency=3) as engine:
        jobs = [_fan_out(kind, payloads), _fan_out(kind, [["second"]])]
        batch_id, _ = await engine.create_batch(None, kind, jobs)
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub)
        states = await _states(engine, batch_id)
    done = seen[-1].data
    assert isinstance(done, RunDone) and (done.completed, done.failed) == (8, 0)
    finished = [e for e in seen if e.event == "job:progress" and e.data.finished]
    assert len(finished) == 8
    added = sorted(map(repr, (p for t, p, s in states if t == "echo" and s is JobState.COMPLETED)))
    assert added == sorted(map(repr, [*payloads, ["second"]]))


async def test_a_crash_after_enqueueing_adds_nothing(tmp_path: Path, store_url: str) -> None:
    async with open_test_engine(
        tmp_path, store_url=store_url, batch_retries=0, job_max_attempts=1
    ) as engine:
        batch_id, _ = await engine.create_batch(
            None, "fan-out", [_fan_out("fan-out", [1, 2], exit=9)]
        )
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub, lambda e: e.event in ("done", "error"))
        states = await _states(engine, batch_id)
    assert isinstance(seen[-1].data, RunError)
    assert states == [("fan-out", states[0][1], JobState.FAILED)]


def _index_done(event: Event) -> bool:
    return event.event == "done" and event.data.batch_id == "index"


async def test_a_flow_fans_out_then_in(tmp_path: Path, store_url: str) -> None:
    async with open_test_engine(tmp_path, store_url=store_url, concurrency=2) as engine:
        await engine.create_batch(
            "split", "fan-out-sync", [_fan_out("fan-out-sync", ["a", "b", "c"], batch="embed")]
        )
        await engine.create_batch("embed", "echo", [], {"after": ["split"]})
        # ``embed`` is empty until ``split`` fills it: the fan-in waits for both.
        await engine.create_batch(
            "index", "echo", [JobRequest(payload="all")], {"after": ["split", "embed"]}
        )
        with trio.fail_after(60), engine.subscribe(["split", "embed", "index"]) as sub:
            await engine.start("split")
            seen = await collect_until(sub, _index_done)
        embed = await _states(engine, "embed")
        split = await _states(engine, "split")
    order = [(e.data.batch_id, e.event) for e in seen if e.event in ("processing:started", "done")]
    assert order == [
        (batch, event)
        for batch in ("split", "embed", "index")
        for event in ("processing:started", "done")
    ]
    assert split == [("fan-out-sync", split[0][1], JobState.COMPLETED)]
    assert embed == [("echo", p, JobState.COMPLETED) for p in "abc"]
    assert seen[-1].data.completed == 1
