"""Integers beyond 64 bits, end to end: through the HTTP API and its
client, the store (SQLite and Redis) and a real child's IPC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from engine.client.http import BatchyardClient
from engine.testing import collect_until, open_test_server
from protocols import api, jsontext
from protocols.events import RunDone

WIDE = {"n": 2**70, "list": [-(2**64), 2**64 - 1, -(2**63) - 1, 1.5], "deep": {"x": 10**40}}


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'batchyard.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


async def _post(client: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    return await client.post(path, content=jsontext.dumps(body), headers=headers)


async def test_a_child_returns_integers_of_any_size_exactly(
    tmp_path: Path, store_url: str
) -> None:
    payloads = [WIDE, 2**70, -(2**100), [2**64]]
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path, store_url=store_url) as (engine, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            jobs = [{"payload": p} for p in payloads]
            created = await _post(
                client, "/api/batches", {"batchId": "wide", "type": "echo", "jobs": jobs}
            )
            assert created.status_code == 201, created.text
            with engine.subscribe(["wide"]) as sub:
                assert (await client.post("/api/jobs/process/all/wide")).status_code == 200
                seen = await collect_until(sub)
            listed = await client.get("/api/batches/wide/jobs", params={"limit": 10})
    assert isinstance(seen[-1].data, RunDone) and seen[-1].data.completed == len(payloads)
    body = jsontext.load_any(listed.content)
    assert all(job["state"] == "completed" for job in body["jobs"])
    assert all(job["result"] == job["payload"] for job in body["jobs"])
    assert sorted(map(repr, (job["payload"] for job in body["jobs"]))) == sorted(
        map(repr, payloads)
    )


async def test_the_client_sends_and_reads_integers_of_any_size(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path) as (_, url),
            BatchyardClient(url) as client,
        ):
            jobs = [api.JobSpec(payload={"n": 2**70})]
            await client.create_batch("echo", jobs, batch_id="b", options={"tag": -(2**80)})
            view = await client.get_batch("b")
    assert view.options == {"tag": -(2**80)}
    assert view.counts.pending == 1
