"""The HTTP and WebSocket client against the engine's real server: every
route, the 429 of a full engine, a watch resuming after its connection is
cut, and a watch ended by a server shutting down.

Each test opens a real server (``open_test_server``) on a free port; the
client's cases against small purpose-built servers are in
``tests/e2e/test_client.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from engine.client.http import BatchyardClient, ClientError
from engine.client.watch import open_watch
from engine.core.engine import Engine
from engine.testing import collect_until, open_test_server
from protocols import api

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:hypercorn")

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
