"""The HTTP and WebSocket client against small real servers.

Each server here is a Starlette app served by hypercorn on a free port inside
the test, answering exactly what a case needs: the contract's error bodies,
a 429 with ``Retry-After``, answers that break the contract, WebSocket
closes with each meaningful code, a feed that drops its subscriber and
honours ``resumeFrom``. The client against the real engine server is in
``tests/e2e/test_cli_client.py`` and ``tests/e2e/test_client_engine.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import engine.client.watch
from engine.client.http import BatchyardClient, ClientError
from engine.client.watch import EventStream, open_watch
from protocols import api
from tests.e2e.fake_servers import app_of, error, event, serve_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:hypercorn")

# --- HTTP ------------------------------------------------------------------------


async def test_a_json_error_body_becomes_one_line() -> None:
    async def create(request: Request) -> Response:
        return error(409, "batch-exists", "batch 'x' already exists")

    with trio.fail_after(10):
        async with serve_app(app_of({"/api/batches": create})) as url, BatchyardClient(url) as c:
            with pytest.raises(ClientError) as caught:
                await c.create_batch("noop", [api.JobSpec(payload={})], batch_id="x")
    assert str(caught.value) == "409 batch-exists: batch 'x' already exists"
    assert (caught.value.status, caught.value.code) == (409, "batch-exists")
    assert not caught.value.transient


async def test_an_error_without_the_contract_body_names_the_status() -> None:
    async def status(request: Request) -> Response:
        return PlainTextResponse("<html>upstream down</html>", status_code=502)

    with trio.fail_after(10):
        async with serve_app(app_of({"/api/status": status})) as url, BatchyardClient(url) as c:
            with pytest.raises(ClientError) as caught:
                await c.status()
    assert str(caught.value) == "502 Bad Gateway"
    assert caught.value.transient


async def test_connection_refused(free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"
    with trio.fail_after(10):
        async with BatchyardClient(url) as client:
            with pytest.raises(ClientError) as caught:
                await client.status()
    assert str(caught.value) == f"cannot reach {url} (connection refused)"
    assert caught.value.transient and caught.value.status is None


async def test_an_answer_that_breaks_the_contract_is_an_error() -> None:
    async def status(request: Request) -> Response:
        return JSONResponse({"runningBatches": "all of them"})

    with trio.fail_after(10):
        async with serve_app(app_of({"/api/status": status})) as url, BatchyardClient(url) as c:
            with pytest.raises(ClientError, match=rf"^unexpected answer from {url}: "):
                await c.status()


@pytest.mark.parametrize(
    ("code", "headers", "status", "retry_after"),
    [
        (200, {}, "started", None),
        (202, {}, "already-running", None),
        (429, {"Retry-After": "7"}, "capacity-reached", 7),
        (429, {}, "capacity-reached", None),
    ],
)
async def test_start_answers(
    code: int, headers: dict[str, str], status: str, retry_after: int | None
) -> None:
    async def start(request: Request) -> Response:
        body = {"status": status, "batchId": request.path_params["batch"]}
        return JSONResponse(body, status_code=code, headers=headers)

    routes = {"/api/jobs/process/all/{batch}": start}
    with trio.fail_after(10):
        async with serve_app(app_of(routes)) as url, BatchyardClient(url) as client:
            outcome = await client.start("b-1")
    assert (outcome.status, outcome.batch_id, outcome.retry_after) == (status, "b-1", retry_after)


async def test_start_that_failed_is_an_error() -> None:
    async def start(request: Request) -> Response:
        return error(500, "child-failed", "the child did not start")

    routes = {"/api/jobs/process/all/{batch}": start}
    with trio.fail_after(10):
        async with serve_app(app_of(routes)) as url, BatchyardClient(url) as client:
            with pytest.raises(ClientError, match=r"^500 child-failed: the child did not start$"):
                await client.start("b")


async def test_requests_carry_the_token_and_encoded_batch_ids() -> None:
    seen: list[tuple[str, str | None, bytes]] = []

    async def record(request: Request) -> Response:
        path = request.scope["raw_path"].decode()
        seen.append((path, request.headers.get("authorization"), await request.body()))
        return JSONResponse({"requeued": 2})

    app = Starlette(routes=[Route("/{rest:path}", record, methods=["POST"])])
    with trio.fail_after(10):
        async with serve_app(app) as url, BatchyardClient(url + "/", token="s3cret") as client:
            assert await client.retry("a/../b") == 2
    assert seen == [("/api/batches/a%2F..%2Fb/retry", "Bearer s3cret", b"")]


async def test_create_batch_sends_the_contract_body() -> None:
    bodies: list[Any] = []

    async def create(request: Request) -> Response:
        bodies.append(orjson.loads(await request.body()))
        return JSONResponse({"batchId": "x", "enqueued": 1, "duplicates": 1}, status_code=201)

    jobs = [api.JobSpec(payload=1, key="k"), api.JobSpec(payload=2, key="k", priority=3)]
    with trio.fail_after(10):
        async with serve_app(app_of({"/api/batches": create})) as url, BatchyardClient(url) as c:
            result = await c.create_batch("echo", jobs, batch_id="x")
    assert result == api.EnqueueResult(batch_id="x", enqueued=1, duplicates=1)
    assert bodies[0]["batchId"] == "x" and bodies[0]["type"] == "echo"
    assert [job["payload"] for job in bodies[0]["jobs"]] == [1, 2]
    assert bodies[0]["jobs"][1]["priority"] == 3


# --- WebSocket -------------------------------------------------------------------


Endpoint = Callable[[WebSocket], Awaitable[None]]


def ws_app(endpoint: Endpoint) -> Starlette:
    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


@asynccontextmanager
async def watching(
    endpoint: Endpoint, batch_ids: Sequence[str] = ("b",), token: str | None = None
) -> AsyncIterator[EventStream]:
    """A watch of ``batch_ids`` on a server whose ``/ws`` is ``endpoint``."""
    async with (
        serve_app(ws_app(endpoint)) as url,
        BatchyardClient(url, token=token) as client,
        open_watch(client, batch_ids) as stream,
    ):
        yield stream


async def test_watch_refused_connection(free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"
    with trio.fail_after(10):
        async with BatchyardClient(url) as client:
            with pytest.raises(ClientError, match=r"\(connection refused\)$"):
                async with open_watch(client, ["b"]):
                    pass  # pragma: no cover


async def test_watch_handshake_denied_with_the_contract_body() -> None:
    async def deny(ws: WebSocket) -> None:
        await ws.send_denial_response(error(401, "unauthorized", "missing or wrong token"))

    with trio.fail_after(10):
        async with serve_app(ws_app(deny)) as url, BatchyardClient(url) as client:
            with pytest.raises(ClientError) as caught:
                async with open_watch(client, ["b"]):
                    pass  # pragma: no cover
    assert str(caught.value) == "401 unauthorized: missing or wrong token"


async def test_watch_closed_with_1008_is_an_auth_error() -> None:
    async def reject(ws: WebSocket) -> None:
        await ws.accept()
        await ws.close(1008, "missing or wrong token")

    with trio.fail_after(10):
        async with serve_app(ws_app(reject)) as url, BatchyardClient(url) as client:
            with pytest.raises(ClientError) as caught:
                async with open_watch(client, ["b"]) as stream:
                    async for _ in stream:
                        pass  # pragma: no cover
    assert caught.value.close_code == 1008
    assert "unauthorized (close 1008: missing or wrong token)" in str(caught.value)


async def test_watch_ends_quietly_when_the_server_shuts_down() -> None:
    async def shutting_down(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(orjson.dumps(event(1, "processing:started")).decode())
        await ws.close(1001, "server shutting down")

    with trio.fail_after(10):
        async with watching(shutting_down) as stream:
            seqs = [e.seq async for e in stream]
    assert seqs == [1]
    assert stream.ended_by is not None and "shutting down (close 1001" in stream.ended_by


class Feed:
    """A ``/ws`` that drops its first subscriber after ``drop_after`` events
    and serves later ones from the ``resumeFrom`` of their query, replaying
    the resume point itself too (a duplicate the client must skip). Asked
    for ``batch=1`` it sends arrays of up to ``per_message`` frames."""

    def __init__(
        self, frames: list[dict[str, Any]], drop_after: int, per_message: int = 3
    ) -> None:
        self.frames = frames
        self.drop_after = drop_after
        self.per_message = per_message
        self.queries: list[str] = []
        self.connections = 0

    async def endpoint(self, ws: WebSocket) -> None:
        await ws.accept()
        self.connections += 1
        self.queries.append(ws.url.query)
        if self.connections == 1:
            await self._send(ws, self.frames[: self.drop_after])
            await ws.close(1013, f"slow subscriber; resume from {self.drop_after}")
            return
        resume = int(ws.query_params["resumeFrom"])
        await self._send(ws, [f for f in self.frames if f["seq"] >= resume])
        with pytest.raises(WebSocketDisconnect):
            await ws.receive_text()

    async def _send(self, ws: WebSocket, frames: list[dict[str, Any]]) -> None:
        if ws.query_params.get("batch") != "1":
            for frame in frames:
                await ws.send_text(orjson.dumps(frame).decode())
            return
        for start in range(0, len(frames), self.per_message):
            await ws.send_text(orjson.dumps(frames[start : start + self.per_message]).decode())


async def test_watch_reconnects_resumes_and_ends_at_done() -> None:
    frames = [event(1, "processing:started")]
    frames += [event(seq, jobId=f"j{seq}", status="completed") for seq in range(2, 8)]
    frames += [event(8, "done", completed=6, failed=0), event(9, "processing:started")]
    feed = Feed(frames, drop_after=4)
    with trio.fail_after(10):
        async with watching(feed.endpoint) as stream:
            seqs = [e.seq async for e in stream]
    # The message holding ``done`` (seq 8) holds seq 9 too; the watch ends at 8.
    assert seqs == list(range(1, 9))
    assert stream.reconnects == 1 and stream.ended_by is None
    # The replay point travels with the reconnect itself, so no live event
    # can come ahead of the replay.
    assert feed.queries == ["batchId=b&batch=1", "batchId=b&batch=1&resumeFrom=4"]


async def test_watch_keeps_going_through_a_restarting_error() -> None:
    frames = [
        event(1, "processing:started"),
        event(2, "error", error="the child exited with code 3", restarting=True),
        event(3, "done", completed=1, failed=0),
    ]
    feed = Feed(frames, drop_after=3)
    with trio.fail_after(10):
        async with watching(feed.endpoint) as stream:
            names = [e.event async for e in stream]
    assert names == ["processing:started", "error", "done"]
    assert feed.connections == 1


async def test_watch_sends_token_and_every_batch_in_the_query() -> None:
    queries: list[str] = []
    headers: list[str | None] = []

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        queries.append(ws.url.query)
        headers.append(ws.headers.get("authorization"))
        await ws.close(1001)

    with trio.fail_after(10):
        async with watching(endpoint, ["a", "b"], token="t") as stream:
            assert [e async for e in stream] == []
    assert queries == ["batchId=a&batchId=b&batch=1&token=t"]
    assert headers == ["Bearer t"]


async def test_watch_gives_up_when_the_server_stays_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine.client.watch, "_RECONNECT_FOR", 0.5)
    attempts = 0

    async def once(ws: WebSocket) -> None:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            await ws.send_denial_response(error(503, "shutting-down", "draining"))
            return
        await ws.accept()
        await ws.send_text(orjson.dumps(event(1, "processing:started")).decode())
        await ws.close(1011)

    with trio.fail_after(10):
        async with serve_app(ws_app(once)) as url, BatchyardClient(url) as client:
            with pytest.raises(ClientError) as caught:
                async with open_watch(client, ["b"]) as stream:
                    async for _ in stream:
                        pass
    assert str(caught.value) == (
        "lost the watch and could not reconnect: 503 shutting-down: draining"
    )
    assert stream.last_seq == 1 and attempts >= 3


async def test_watch_accepts_a_restarted_server_numbering_afresh() -> None:
    restarted = [event(1, "processing:started"), event(2, "done", completed=0, failed=0)]
    connections = 0

    async def endpoint(ws: WebSocket) -> None:
        nonlocal connections
        connections += 1
        await ws.accept()
        if connections == 1:
            for seq in (5, 6):
                await ws.send_text(orjson.dumps(event(seq, "processing:progress")).decode())
            await ws.close(1011)
            return
        assert ws.query_params["resumeFrom"] == "6"
        for frame in restarted:
            await ws.send_text(orjson.dumps(frame).decode())
        with pytest.raises(WebSocketDisconnect):
            await ws.receive_text()

    with trio.fail_after(10):
        async with watching(endpoint) as stream:
            seqs = [e.seq async for e in stream]
    assert seqs == [5, 6, 1, 2]
