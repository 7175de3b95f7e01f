"""The HTTP and WebSocket client against small real servers.

Each server here is a Starlette app served by hypercorn on a free port inside
the test, answering exactly what a case needs: the contract's error bodies,
a 429 with ``Retry-After``, answers that break the contract, WebSocket
closes with each meaningful code, a feed that drops its subscriber and
honours ``resumeFrom``. The client against the real engine server is in
``tests/e2e/test_cli_client.py``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import engine.client.watch
from engine.client.http import BatchyardClient, ClientError
from engine.client.watch import EventStream, open_watch
from engine.core.engine import Engine
from engine.testing import collect_until, open_test_server
from protocols import api

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:hypercorn")

Handler = Callable[[Request], Awaitable[Response]]


@asynccontextmanager
async def serve_app(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` on a free local port; yields its base URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(functools.partial(serve, app, config))
        yield binds[0]
        nursery.cancel_scope.cancel()


def app_of(routes: dict[str, Handler], *, methods: Sequence[str] = ("GET", "POST")) -> Starlette:
    return Starlette(routes=[Route(p, h, methods=list(methods)) for p, h in routes.items()])


def error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


#: What each event's data holds besides ``batchId`` unless a test says otherwise.
_COUNTS: dict[str, dict[str, Any]] = {
    "processing:progress": {"completed": 0, "failed": 0, "total": 0},
    "done": {"completed": 0, "failed": 0},
}


def event(seq: int, name: str = "job:progress", **data: Any) -> dict[str, Any]:
    """A WebSocket frame of batch ``b``, as the server would send it."""
    return {"event": name, "seq": seq, "data": {"batchId": "b", **_COUNTS.get(name, {}), **data}}


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


# --- against the engine's server ------------------------------------------------

#: Runs until cancelled or shut down, in any test's time.
LONG_JOB = api.JobSpec(payload={"seconds": 30})


async def _stop_serving(engine: Engine) -> None:
    """What the server does on SIGTERM: drain the engine, then end every event client."""
    await engine.shutdown()
    engine.end_subscriptions()


async def test_every_route_against_the_real_server(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path, concurrency=4) as (_, url),
            BatchyardClient(url) as client,
        ):
            jobs = [api.JobSpec(payload={"n": n}, key=f"k{n % 3}") for n in range(5)]
            created = await client.create_batch("echo", jobs, batch_id="r1")
            added = await client.add_jobs("r1", [api.JobSpec(type="fail", payload={})])
            assert (created.enqueued, created.duplicates, added.enqueued) == (3, 2, 1)
            with pytest.raises(ClientError, match=r"^409 batch-exists: "):
                await client.create_batch("echo", [], batch_id="r1")
            async with open_watch(client, ["r1"]) as stream:
                assert (await client.start("r1")).status == "started"
                seen = [e async for e in stream]
            assert seen[-1].data.completed == 3 and seen[-1].data.failed == 1
            view = await client.get_batch("r1")
            assert (view.running, view.counts.completed, view.counts.failed) == (False, 3, 1)
            assert [b.batch_id for b in await client.list_batches()] == ["r1"]
            assert await client.retry("r1") == 1
            await client.pause()
            assert (await client.status()).paused
            await client.resume()
            assert not (await client.status()).paused
            with pytest.raises(ClientError, match=r"^409 batch-not-running: "):
                await client.cancel("r1")
            with pytest.raises(ClientError, match=r"^404 batch-not-found: "):
                await client.get_batch("nope")


async def test_capacity_reached_answers_with_retry_after(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path, max_active_batches=1) as (_, url),
            BatchyardClient(url) as client,
        ):
            for batch_id in ("long", "next"):
                await client.create_batch("sleep", [LONG_JOB], batch_id=batch_id)
            assert (await client.start("long")).status == "started"
            assert (await client.start("long")).status == "already-running"
            outcome = await client.start("next")
            await client.cancel("long")
    assert outcome.status == "capacity-reached"
    assert outcome.retry_after is not None and outcome.retry_after >= 1


class Relay:
    """A TCP relay to a server whose connections a test can cut at will, as
    a flaky network or a restarting proxy would."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._scopes: set[trio.CancelScope] = set()
        self.accepted = 0

    async def serve(self, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(
            self._relay,
            listeners,
            task_status=_started_as(task_status, f"http://127.0.0.1:{port}"),
        )

    async def _relay(self, near: trio.SocketStream) -> None:
        self.accepted += 1
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                far = await trio.open_tcp_stream("127.0.0.1", self._port)
                async with near, far, trio.open_nursery() as nursery:
                    nursery.start_soon(_pump, near, far, nursery.cancel_scope)
                    nursery.start_soon(_pump, far, near, nursery.cancel_scope)
            finally:
                self._scopes.discard(scope)

    def cut(self) -> None:
        """Drop every open connection without a WebSocket close frame."""
        for scope in list(self._scopes):
            scope.cancel()


class _StartedAs:
    def __init__(self, status: trio.TaskStatus[str], value: str) -> None:
        self._status = status
        self._value = value

    def started(self, value: object = None) -> None:
        self._status.started(self._value)


def _started_as(status: trio.TaskStatus[str], value: str) -> Any:
    return _StartedAs(status, value)


async def _pump(
    source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope
) -> None:
    try:
        async for data in source:
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    done.cancel()


async def test_a_cut_connection_resumes_without_losing_an_event(tmp_path: Path) -> None:
    payloads = [api.JobSpec(payload={"seconds": 0.03}) for _ in range(60)]
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path, concurrency=2) as (test_engine, url),
            BatchyardClient(url) as direct,
            trio.open_nursery() as nursery,
        ):
            relay = Relay(int(url.rsplit(":", 1)[1]))
            relayed_url = await nursery.start(relay.serve)
            await direct.create_batch("sleep", payloads, batch_id="cut")
            with test_engine.subscribe(["cut"]) as truth:
                async with (
                    BatchyardClient(relayed_url) as client,
                    open_watch(client, ["cut"]) as stream,
                ):
                    await direct.start("cut")
                    seen = []
                    async for event in stream:
                        seen.append(event)
                        if len(seen) in (5, 60):
                            relay.cut()
                expected = await collect_until(truth)
            nursery.cancel_scope.cancel()
    assert stream.reconnects == 2 and relay.accepted == 3
    assert [(e.seq, e.event) for e in seen] == [(e.seq, e.event) for e in expected]
    assert seen[-1].event == "done" and seen[-1].data.completed == 60


async def test_a_server_shutting_down_ends_a_followed_watch(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path, shutdown_grace_seconds=0.5) as (engine, url),
            BatchyardClient(url) as client,
            trio.open_nursery() as nursery,
        ):
            await client.create_batch("sleep", [LONG_JOB], batch_id="s")
            async with open_watch(client, ["s"], follow=True) as stream:
                await client.start("s")
                names = []
                async for event in stream:
                    names.append(event.event)
                    if event.event == "processing:started":
                        nursery.start_soon(_stop_serving, engine)
    assert names[0] == "processing:started" and names[-1] == "done"
    assert stream.ended_by is not None and "shutting down (close 1001" in stream.ended_by
