"""``GET /api/jobs/{jobId}``, its ``cancel`` and ``retry``, ``timeoutSeconds``,
and a running batch's ``child`` (``GET /api/batches/{id}``, ``/metrics``),
over real HTTP against an engine with real children."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
import psutil
import trio

from engine.testing import open_test_server
from tests.conftest import Served
from tests.e2e.test_api import _error

_FIELDS = [
    "jobId",
    "batchId",
    "type",
    "state",
    "payload",
    "attempts",
    "key",
    "priority",
    "cost",
    "progress",
    "result",
    "error",
    "createdAt",
    "startedAt",
    "finishedAt",
]


async def _create(client: httpx.AsyncClient, batch_id: str, *jobs: dict[str, object]) -> list[str]:
    response = await client.post(
        "/api/batches", json={"batchId": batch_id, "type": "echo", "jobs": list(jobs)}
    )
    assert response.status_code == 201, response.text
    listed = (await client.get(f"/api/batches/{batch_id}/jobs")).json()["jobs"]
    return [job["jobId"] for job in listed]


async def test_one_job_is_read_cancelled_and_retried(
    server: Served, client: httpx.AsyncClient
) -> None:
    with trio.fail_after(30):
        first, second = await _create(
            client,
            "b1",
            {"payload": {"n": 1}, "cost": 2},
            {"payload": {"n": 2}, "timeoutSeconds": 3},
        )
        job = (await client.get(f"/api/jobs/{first}")).json()
        assert list(job) == _FIELDS
        assert (job["batchId"], job["state"], job["cost"], job["startedAt"]) == (
            "b1",
            "pending",
            2,
            None,
        )
        assert datetime.fromisoformat(job["createdAt"]).utcoffset() is not None
        _error(await client.get("/api/jobs/nope"), 404, "job-not-found")

        cancelled = await client.post(f"/api/jobs/{first}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json() == {"jobId": first, "state": "failed"}
        assert (await client.get(f"/api/jobs/{first}")).json()["error"] == "cancelled"
        _error(await client.post(f"/api/jobs/{first}/cancel"), 409, "job-state")
        _error(await client.post(f"/api/jobs/{second}/retry"), 409, "job-state")

        retried = await client.post(f"/api/jobs/{first}/retry")
        assert retried.json() == {"jobId": first, "state": "pending"}
        await client.post("/api/jobs/process/all/b1")
        await server.engine.wait_stopped("b1")
        for job_id in (first, second):
            done = (await client.get(f"/api/jobs/{job_id}")).json()
            assert done["state"] == "completed"
            started = datetime.fromisoformat(done["startedAt"])
            assert started <= datetime.fromisoformat(done["finishedAt"])
        _error(await client.post(f"/api/jobs/{first}/cancel"), 409, "job-state")
        _error(await client.post("/api/jobs/nope/retry"), 404, "job-not-found")


async def test_timeout_seconds_is_validated(client: httpx.AsyncClient) -> None:
    for bad in (0, -1, "soon"):
        response = await client.post(
            "/api/batches", json={"type": "echo", "jobs": [{"timeoutSeconds": bad}]}
        )
        assert "timeoutSeconds" in _error(response, 400, "invalid-body")


async def test_a_running_batch_shows_its_child(tmp_path: Path) -> None:
    async with (
        open_test_server(tmp_path, concurrency=1) as (engine, url),
        httpx.AsyncClient(base_url=url) as client,
    ):
        with trio.fail_after(30):
            jobs = [{"type": "steps", "payload": {"steps": 4}}] + [
                {"type": "sleep", "payload": {"seconds": 0.5}} for _ in range(4)
            ]
            await client.post("/api/batches", json={"batchId": "b", "type": "sleep", "jobs": jobs})
            assert (await client.get("/api/batches/b")).json()["child"] is None
            await client.post("/api/jobs/process/all/b")
            child = None
            while child is None or child["rssBytes"] == 0 or child["jobsRun"] < 2:
                await trio.sleep(0.1)
                child = (await client.get("/api/batches/b")).json()["child"]
            process = psutil.Process(child["pid"])
            assert "engine.child" in " ".join(process.cmdline())
            assert child["cpuSeconds"] > 0
            metrics = (await client.get("/metrics")).text
            assert f'batchyard_child_rss_bytes{{batch="b",pid="{child["pid"]}"}}' in metrics
            assert f'batchyard_child_jobs_run{{batch="b",pid="{child["pid"]}"}}' in metrics
            steps = (await client.get("/api/batches/b/jobs")).json()["jobs"][0]
            assert steps["progress"] == 100.0
            await engine.wait_stopped("b")
            assert (await client.get("/api/batches/b")).json()["child"] is None
