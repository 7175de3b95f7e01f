"""Every route of the HTTP API and its status codes, against a real server
(what it answers when something goes wrong is in ``test_api_errors``)."""

from __future__ import annotations

import os
import re
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import trio
from starlette.routing import Route, WebSocketRoute

from engine.core.engine import Engine
from engine.server.app import create_app
from engine.testing import (
    collect_until,
    open_test_engine,
    open_test_server,
)
from protocols.events import JobUpdate
from protocols.lifecycle import JobState
from tests.conftest import Served
from tests.e2e.error_body import _error
from tests.e2e.helpers import create_batch, open_ws

_JOB_FIELDS = {
    "cost",
    "jobId",
    "batchId",
    "progress",
    "createdAt",
    "startedAt",
    "finishedAt",
    "type",
    "state",
    "payload",
    "attempts",
    "key",
    "priority",
    "result",
    "error",
}


async def _wait_idle(engine: Engine, batch_id: str) -> None:
    await engine.wait_stopped(batch_id)


async def test_batches_are_created_listed_read_and_deleted(client: httpx.AsyncClient) -> None:
    with trio.fail_after(30):
        jobs = [{"payload": 1, "key": "a"}, {"payload": 2, "key": "a"}, {"payload": 3}]
        created = await client.post(
            "/api/batches", json={"batchId": "b1", "type": "echo", "jobs": jobs}
        )
        assert created.status_code == 201
        assert created.json() == {"batchId": "b1", "enqueued": 2, "duplicates": 1}
        again = await client.post(
            "/api/batches", json={"batchId": "b1", "type": "echo", "jobs": []}
        )
        _error(again, 409, "batch-exists")
        unknown = await client.post("/api/batches", json={"type": "nope", "jobs": [{}]})
        assert "nope" in _error(unknown, 400, "unknown-job-type")

        added = await client.post(
            "/api/batches/b1/jobs", json={"jobs": [{"key": "a"}, {"type": "noop"}]}
        )
        assert added.status_code == 201
        assert added.json() == {"batchId": "b1", "enqueued": 1, "duplicates": 1}
        _error(
            await client.post("/api/batches/zz/jobs", json={"jobs": []}),
            404,
            "batch-not-found",
        )
        wrong_type = await client.post("/api/batches/b1/jobs", json={"jobs": [{"type": "nope"}]})
        _error(wrong_type, 400, "unknown-job-type")

        batch = (await client.get("/api/batches/b1")).json()
        assert batch["batchId"] == "b1" and batch["type"] == "echo" and batch["running"] is False
        assert batch["counts"] == {"pending": 3, "active": 0, "completed": 0, "failed": 0}
        listed = (await client.get("/api/batches")).json()
        assert [b["batchId"] for b in listed["batches"]] == ["b1"]
        _error(await client.get("/api/batches/zz"), 404, "batch-not-found")

        deleted = await client.delete("/api/batches/b1")
        assert deleted.status_code == 204 and deleted.content == b""
        _error(await client.get("/api/batches/b1"), 404, "batch-not-found")
        _error(await client.delete("/api/batches/b1"), 404, "batch-not-found")


#: Bodies ``POST /api/batches`` refuses, each with the wire path its message names.
_BAD_BODIES = [
    (b"{", "$"),
    (b"", "$"),
    (b'{"type": "echo", "jobs": [{"priority": "3"}]}', "$.jobs[0].priority"),
    (b'{"type": "echo", "jobs": [{}, {"delaySeconds": -1}]}', "$.jobs[1].delaySeconds"),
    (b'{"type": "echo", "jobs": [{"cost": -2}]}', "$.jobs[0].cost"),
    (b'{"type": "echo", "jobs": [], "extra": 1}', "extra"),
    (b'{"jobs": []}', "$.type"),
    (b'{"type": "echo", "jobs": [], "batchId": "no spaces"}', "$.batchId"),
    (b"[]", "$"),
]


async def test_bad_bodies_answer_400_naming_the_field(client: httpx.AsyncClient) -> None:
    with trio.fail_after(20):
        responses = [await client.post("/api/batches", content=b) for b, _ in _BAD_BODIES]
    for response, (body, path) in zip(responses, _BAD_BODIES, strict=True):
        assert path in _error(response, 400, "invalid-body"), body


async def test_jobs_are_listed_in_pages_and_queries_are_checked(client: httpx.AsyncClient) -> None:
    with trio.fail_after(30):
        batch_id = await create_batch(client, "echo", list(range(25)))
        seen: list[Any] = []
        cursor = None
        while True:
            params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
            page = (await client.get(f"/api/batches/{batch_id}/jobs", params=params)).json()
            seen += page["jobs"]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert [job["payload"] for job in seen] == list(range(25))
        job = seen[0]
        assert set(job) == _JOB_FIELDS
        assert job["state"] == "pending" and job["type"] == "echo"
        pending = await client.get(f"/api/batches/{batch_id}/jobs?state=pending&limit=1000")
        assert len(pending.json()["jobs"]) == 25
        failed = await client.get(f"/api/batches/{batch_id}/jobs?state=failed")
        assert failed.json() == {"jobs": [], "nextCursor": None}
        for query in (
            "state=done",
            "limit=0",
            "limit=1001",
            "limit=ten",
            "limit=-1",
            "cursor=zz",
        ):
            bad = await client.get(f"/api/batches/{batch_id}/jobs?{query}")
            assert query.split("=")[0] in _error(bad, 400, "invalid-query")
        _error(await client.get("/api/batches/zz/jobs"), 404, "batch-not-found")


async def test_process_all_answers_200_202_429_and_runs_can_be_cancelled(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with (
            open_test_server(tmp_path, max_active_batches=1, shutdown_grace_seconds=1.0) as (
                engine,
                url,
            ),
            httpx.AsyncClient(base_url=url) as client,
        ):
            first = await create_batch(client, "sleep", [{"seconds": 30}] * 2)
            second = await create_batch(client, "noop", [None])
            _error(await client.post(f"/api/batches/{first}/cancel"), 409, "batch-not-running")

            started = await client.post(f"/api/jobs/process/all/{first}")
            assert started.status_code == 200
            assert started.json() == {"status": "started", "batchId": first}
            again = await client.post(f"/api/jobs/process/all/{first}")
            assert again.status_code == 202 and again.json()["status"] == "already-running"
            full = await client.post(f"/api/jobs/process/all/{second}")
            assert full.status_code == 429 and full.json()["status"] == "capacity-reached"
            assert full.headers["retry-after"].isdigit() and int(full.headers["retry-after"]) >= 1
            _error(await client.post("/api/jobs/process/all/zz"), 404, "batch-not-found")

            assert (await client.get(f"/api/batches/{first}")).json()["running"] is True
            status = (await client.get("/api/status")).json()
            assert status["runningBatches"] == [first] and status["activeBatches"] == 1
            _error(await client.delete(f"/api/batches/{first}"), 409, "batch-running")

            cancelled = await client.post(f"/api/batches/{first}/cancel")
            assert cancelled.status_code == 200 and cancelled.json()["batchId"] == first
            _error(await client.post("/api/batches/zz/cancel"), 404, "batch-not-found")
            await _wait_idle(engine, first)
            batch = (await client.get(f"/api/batches/{first}")).json()
            assert batch["running"] is False
            assert batch["counts"] == {"pending": 2, "active": 0, "completed": 0, "failed": 0}
            now = await client.post(f"/api/jobs/process/all/{second}")
            assert now.status_code == 200


async def test_failed_jobs_are_retried(server: Served, client: httpx.AsyncClient) -> None:
    with trio.fail_after(30):
        engine = server.engine
        batch_id = await create_batch(client, "fail", [{"message": "boom"}] * 3)
        await client.post(f"/api/jobs/process/all/{batch_id}")
        await _wait_idle(engine, batch_id)
        failed = (await client.get(f"/api/batches/{batch_id}/jobs?state=failed")).json()
        assert [job["error"] for job in failed["jobs"]] == ["RuntimeError: boom"] * 3
        retried = await client.post(f"/api/batches/{batch_id}/retry")
        assert retried.status_code == 200 and retried.json() == {"requeued": 3}
        counts = (await client.get(f"/api/batches/{batch_id}")).json()["counts"]
        assert counts["pending"] == 3 and counts["failed"] == 0
        _error(await client.post("/api/batches/zz/retry"), 404, "batch-not-found")


async def test_pause_resume_and_status(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path, max_active_batches=3) as (engine, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            status = (await client.get("/api/status")).json()
            (me,) = status.pop("engines")
            assert status == {
                "runningBatches": [],
                "activeBatches": 0,
                "maxBatches": 3,
                "isShuttingDown": False,
                "paused": False,
                "engineId": engine.owner,
            }
            last_seen = datetime.fromisoformat(me.pop("lastSeen"))
            assert abs(last_seen.timestamp() - time.time()) < 30
            assert me == {
                "engineId": engine.owner,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "runningBatches": [],
                "maxBatches": 3,
            }
            paused = await client.post("/api/pause")
            assert paused.status_code == 200 and paused.json()["paused"] is True
            batch_id = await create_batch(client, "noop", [None] * 3)
            assert (await client.post(f"/api/jobs/process/all/{batch_id}")).status_code == 200
            await trio.sleep(0.3)
            held = (await client.get(f"/api/batches/{batch_id}")).json()["counts"]
            assert held["completed"] == 0
            resumed = await client.post("/api/resume")
            assert resumed.status_code == 200 and resumed.json()["paused"] is False
            await _wait_idle(engine, batch_id)
            done = (await client.get(f"/api/batches/{batch_id}")).json()["counts"]
            assert done["completed"] == 3


async def test_health_and_metrics(server: Served, client: httpx.AsyncClient) -> None:
    with trio.fail_after(30):
        engine, url = server.engine, server.url
        batch_id = await create_batch(client, "echo", list(range(4)))
        await create_batch(client, "echo", [1])
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json() == {
            "status": "ok",
            "services": {"store": "connected", "engine": "running"},
            "metrics": {"queueLength": 5, "activeWorkers": 0},
        }
        async with open_ws(url):
            await client.post(f"/api/jobs/process/all/{batch_id}")
            await _wait_idle(engine, batch_id)
            await trio.sleep(0.1)  # the metrics follower reads the last events
            metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    lines = set(metrics.text.splitlines())
    assert 'batchyard_jobs{state="completed"} 4.0' in lines
    assert 'batchyard_jobs{state="pending"} 1.0' in lines
    assert 'batchyard_jobs_finished_total{state="completed",type="echo"} 4.0' in lines
    assert 'batchyard_job_duration_seconds_count{state="completed",type="echo"} 4.0' in lines
    assert 'batchyard_subscribers{transport="ws"} 1.0' in lines
    assert "batchyard_active_batches 0.0" in lines
    assert "batchyard_store_up 1.0" in lines
    assert "batchyard_child_restarts_total 0.0" in lines
    assert "batchyard_subscribers_dropped_total 0.0" in lines
    published = [line for line in lines if line.startswith("batchyard_events_published_total ")]
    assert float(published[0].split()[1]) >= 4


async def test_dashboard_page_and_openapi_document(
    server: Served, client: httpx.AsyncClient
) -> None:
    with trio.fail_after(20):
        engine = server.engine
        await create_batch(client, "echo", [1, 2], batchId="listed-here")
        page = await client.get("/")
        document = (await client.get("/openapi.json")).json()
        app = create_app(engine)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    names = re.findall(r'(?:src|href)="/static/([\w.]+)"', page.text)
    assert sorted(names) == ["app.js", "dashboard.css", "favicon.svg"]
    for name in [
        *names,
        "api.js",
        "live.js",
        "model.js",
        "render.js",
        "token.js",
    ]:  # app.js imports
        asset = await client.get(f"/static/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-security-policy"] == page.headers["content-security-policy"]
    missing = await client.get("/static/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not-found"
    types = (await client.get("/api/types")).json()["types"]
    assert {"noop", "echo", "sleep"} <= set(types) and types == sorted(types)
    assert document["openapi"].startswith("3.1")
    for route in app.routes:
        assert isinstance(route, Route | WebSocketRoute)
        methods = (
            {"get"}
            if isinstance(route, WebSocketRoute)
            else {m.lower() for m in route.methods or () if m != "HEAD"}
        )
        assert route.path in document["paths"], route.path
        assert set(document["paths"][route.path]) == methods, route.path


async def test_several_apps_live_side_by_side(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_test_engine(tmp_path) as engine:
            first, second = create_app(engine), create_app(engine)
    assert first is not second


async def test_the_metrics_follower_catches_up_after_being_dropped(tmp_path: Path) -> None:
    # A buffer of 2 and a burst of 20 events published at once: the follower
    # is dropped as slow and must resume from the replay ring.
    with trio.fail_after(20):
        async with (
            open_test_server(tmp_path, subscriber_buffer=2) as (engine, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            for n in range(20):
                engine.publish(
                    JobUpdate(
                        batch_id="b",
                        job_id=str(n),
                        status=JobState.COMPLETED,
                        type="t",
                        duration_ms=5.0,
                    )
                )
            await trio.sleep(0.2)
            text = (await client.get("/metrics")).text
    assert 'batchyard_jobs_finished_total{state="completed",type="t"} 20.0' in text
    assert "batchyard_subscribers_dropped_total 1.0" in text


async def test_a_flow_shows_its_options_and_runs_after_its_batches(
    server: Served, client: httpx.AsyncClient
) -> None:
    with trio.fail_after(30):
        bad = await client.post(
            "/api/batches", json={"type": "noop", "jobs": [], "options": {"after": ["a b"]}}
        )
        assert bad.status_code == 400 and "options" in bad.json()["error"]["message"]
        first = await create_batch(client, "sleep", [{"seconds": 0.5}])
        options = {"after": [first], "autoStart": False}
        step = await create_batch(client, "noop", [None], options=options)
        assert (await client.get(f"/api/batches/{step}")).json()["options"] == options
        with server.engine.subscribe([step]) as sub:
            assert (await client.post(f"/api/jobs/process/all/{first}")).status_code == 200
            running = (await client.get(f"/api/batches/{first}")).json()
            assert (running["running"], running["engineId"]) == (True, server.engine.owner)
            assert (await client.delete(f"/api/batches/{first}")).status_code == 409
            assert (await collect_until(sub))[-1].data.completed == 1
        idle = (await client.get(f"/api/batches/{first}")).json()
        assert (idle["running"], idle["engineId"], idle["counts"]["completed"]) == (False, None, 1)
