"""The HTTP API when something goes wrong, against a real server: a failing
store, a shutdown, a child that cannot start, unknown routes, bodies over
the limit and a bug each answer the contract's JSON error body with their
status code, and the server keeps serving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from engine.store import open_store
from engine.testing import FailingStore, open_test_server, settings_for_tests
from tests.e2e.error_body import _error
from tests.e2e.helpers import create_batch


async def test_a_failing_store_degrades_health_until_it_recovers(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with open_store(settings_for_tests(tmp_path).store_url) as real:
            failing = FailingStore(real)
            async with (
                open_test_server(tmp_path, store=failing) as (_, url),
                httpx.AsyncClient(base_url=url) as client,
            ):
                failing.fail("ping", "list_batches", "queue_length")
                health = await client.get("/health")
                listed = await client.get("/api/batches")
                metrics = await client.get("/metrics")
                failing.recover()
                healthy = await client.get("/health")
    assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
    assert health.status_code == 503
    assert health.json()["status"] == "degraded"
    assert health.json()["services"]["store"] == "unavailable"
    _error(listed, 503, "store-unavailable")
    assert metrics.status_code == 200 and "batchyard_store_up 0.0" in metrics.text


async def test_work_is_refused_with_503_while_shutting_down(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path, shutdown_grace_seconds=2.0) as (engine, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            batch_id = await create_batch(client, "sleep", [{"seconds": 30}])
            await client.post(f"/api/jobs/process/all/{batch_id}")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(engine.shutdown)
                await trio.sleep(0.1)
                create = await client.post("/api/batches", json={"type": "noop", "jobs": []})
                add = await client.post(f"/api/batches/{batch_id}/jobs", json={"jobs": [{}]})
                start = await client.post(f"/api/jobs/process/all/{batch_id}")
                status = (await client.get("/api/status")).json()
                health = await client.get("/health")
    _error(create, 503, "shutting-down")
    _error(add, 503, "shutting-down")
    _error(start, 503, "shutting-down")
    assert status["isShuttingDown"] is True
    assert health.status_code == 503 and health.json()["services"]["engine"] == "shutting-down"


async def test_a_child_that_cannot_start_answers_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The module imports in the engine but ends any child process that imports it.
    module = tmp_path / "dies_in_child.py"
    module.write_text(
        "import sys\n"
        "spec = getattr(sys.modules['__main__'], '__spec__', None)\n"
        "if spec is not None and spec.name.startswith('engine.child'):\n"
        "    raise SystemExit(7)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    modules = ("engine.testing", "dies_in_child")
    with trio.fail_after(40):
        async with (
            open_test_server(tmp_path, warm_children=0, job_modules=modules) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            batch_id = await create_batch(client, "noop", [None])
            response = await client.post(f"/api/jobs/process/all/{batch_id}")
            status = (await client.get("/api/status")).json()
    _error(response, 500, "child-failed")
    assert status["activeBatches"] == 0


async def test_unknown_routes_and_methods_answer_json(client: httpx.AsyncClient) -> None:
    with trio.fail_after(20):
        missing = await client.get("/api/nothing")
        wrong = await client.put("/api/batches")
        wrong_get = await client.get("/api/pause")
    assert "/api/nothing" in _error(missing, 404, "not-found")
    _error(wrong, 405, "method-not-allowed")
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    _error(wrong_get, 405, "method-not-allowed")


async def test_bodies_over_the_limit_answer_413(tmp_path: Path) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"type": "echo", "jobs": ['
        for _ in range(8):
            yield b'{"payload": "' + b"x" * 1000 + b'"},'
        yield b"{}]}"

    with trio.fail_after(20):
        async with open_test_server(tmp_path, max_body_bytes=2048) as (_, url):
            async with httpx.AsyncClient(base_url=url) as client:
                declared = await client.post("/api/batches", content=b"x" * 4096)
            async with httpx.AsyncClient(base_url=url) as client:
                streamed = await client.post("/api/batches", content=chunks())
            async with httpx.AsyncClient(base_url=url) as client:
                small = await client.post("/api/batches", json={"type": "echo", "jobs": []})
    assert "2048" in _error(declared, 413, "body-too-large")
    _error(streamed, 413, "body-too-large")
    assert small.status_code == 201


class _BuggyStore:
    """A store whose ``list_batches`` has a bug (not a store failure) until
    ``fix`` is called."""

    def __init__(self, store: object) -> None:
        self._store = store
        self._buggy = True

    def fix(self) -> None:
        self._buggy = False

    async def list_batches(self) -> Any:
        if self._buggy:
            raise RuntimeError("a bug")
        return await self._store.list_batches()  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_a_bug_answers_the_json_500_body_and_the_server_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(20):
        async with open_store(settings_for_tests(tmp_path).store_url) as real:
            buggy = _BuggyStore(real)
            async with (
                open_test_server(tmp_path, store=buggy) as (_, url),
                httpx.AsyncClient(base_url=url) as client,
            ):
                broken = await client.get("/api/batches")
                buggy.fix()
                after = await client.get("/api/batches")
    assert _error(broken, 500, "internal") == "internal server error"
    assert "a bug" in caplog.text and "GET /api/batches failed" in caplog.text
    assert after.status_code == 200
