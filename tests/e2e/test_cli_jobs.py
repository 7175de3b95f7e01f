"""``batchyard job | cancel-job | retry-job`` as real subprocesses against a
real engine server."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from engine.testing import open_test_server
from tests.e2e.test_cli_client import batchyard, document


async def test_job_cancel_job_and_retry_job(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with (
            open_test_server(tmp_path) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            await client.post(
                "/api/batches", json={"batchId": "c", "type": "echo", "jobs": [{"payload": 7}]}
            )
            (job_id,) = [
                j["jobId"] for j in (await client.get("/api/batches/c/jobs")).json()["jobs"]
            ]
            shown = await batchyard(url, "job", job_id, "--json")
            line = await batchyard(url, "job", job_id)
            cancelled = await batchyard(url, "cancel-job", job_id)
            again = await batchyard(url, "cancel-job", job_id)
            retried = await batchyard(url, "retry-job", job_id)
            unknown = await batchyard(url, "job", "nope")
    assert shown.code == 0
    assert document(shown.out) | {"createdAt": None} == {
        "jobId": job_id,
        "batchId": "c",
        "type": "echo",
        "state": "pending",
        "payload": 7,
        "attempts": 0,
        "key": None,
        "priority": 0,
        "cost": 1.0,
        "progress": None,
        "result": None,
        "error": None,
        "createdAt": None,
        "startedAt": None,
        "finishedAt": None,
    }
    assert line.out == f"job {job_id} (batch c, type echo): pending, attempts 0\n"
    assert (cancelled.code, cancelled.out) == (0, f"job {job_id}: failed (cancelled)\n")
    assert again.code == 1
    assert again.err_lines == [f"batchyard: 409 job-state: job {job_id!r} is failed already"]
    assert (retried.code, retried.out) == (0, f"job {job_id}: pending again\n")
    assert unknown.code == 1 and unknown.err_lines == [
        "batchyard: 404 job-not-found: no job 'nope'"
    ]
