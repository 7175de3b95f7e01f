"""Events over WebSocket and SSE against a real server: sequences, resume,
control messages, slow readers, shutdown."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected

from engine.server import streams as server_streams
from engine.testing import open_test_server
from protocols.events import Event, JobUpdate, ProcessingStarted, RunDone
from protocols.frames import parse_ws_frame
from protocols.lifecycle import JobState
from tests.e2e.helpers import create_batch, open_sse, open_ws, read_ws


def _blob(batch_id: str, n: int, blob: str) -> JobUpdate:
    """A big event, numbered ``n`` by its job id."""
    return JobUpdate(batch_id=batch_id, job_id=str(n), status=JobState.FAILED, error=blob)


def _check_run(events: list[Event], jobs: int) -> None:
    names = Counter(e.event for e in events)
    assert events[0].event == "processing:started" and names["processing:started"] == 1
    assert events[-1].event == "done" and names["done"] == 1
    terminal = [e for e in events if e.event == "job:progress" and e.data.finished]
    assert len({e.data.job_id for e in terminal}) == len(terminal) == jobs
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))


async def test_websocket_gets_the_event_sequence_of_a_run(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            batch_id = await create_batch(client, "echo", list(range(10)))
            async with open_ws(url, f"batchId={batch_id}") as ws:
                response = await client.post(f"/api/jobs/process/all/{batch_id}")
                assert response.status_code == 200
                events = await read_ws(ws)
    _check_run(events, 10)
    assert events[-1].data == RunDone(batch_id=batch_id, completed=10, failed=0)


async def test_sse_gets_the_event_sequence_of_a_run(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            batch_id = await create_batch(client, "echo", list(range(10)))
            async with open_sse(url, f"batchId={batch_id}") as sse:
                assert sse.status == 200
                assert sse.headers["content-type"].startswith("text/event-stream")
                await client.post(f"/api/jobs/process/all/{batch_id}")
                events = await sse.read_until()
    _check_run(events, 10)


async def test_filters_by_batch_and_follows_subscribe_messages(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path, max_active_batches=2) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            first = await create_batch(client, "noop", [None] * 3)
            second = await create_batch(client, "noop", [None] * 3)
            async with open_ws(url, f"batchId={first}&batchId=nobody") as ws:
                await ws.send_message(orjson.dumps({"subscribe": [second]}).decode())
                await ws.send_message(orjson.dumps({"unsubscribe": [first]}).decode())
                await trio.sleep(0.2)  # the server applies control messages in order
                await client.post(f"/api/jobs/process/all/{first}")
                await client.post(f"/api/jobs/process/all/{second}")
                events = await read_ws(ws)
    assert {e.data.batch_id for e in events} == {second}
    _check_run(events, 3)


async def test_sse_filters_by_several_batches_and_keeps_the_stream_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_streams, "KEEPALIVE_SECONDS", 0.1)
    with trio.fail_after(20):
        async with (
            open_test_server(tmp_path) as (engine, url),
            open_sse(url, "batchId=a&batchId=b") as sse,
        ):
            quiet = await sse.next_item()
            for batch_id in ("a", "c", "b"):
                engine.publish(ProcessingStarted(batch_id=batch_id))
            items = [await sse.next_item() for _ in range(2)]
    assert quiet == "keep-alive"
    assert [item.data.batch_id for item in items if isinstance(item, Event)] == ["a", "b"]


async def test_websocket_resume_from_replays_after_a_disconnect(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            batch_id = await create_batch(client, "echo", list(range(8)))
            async with open_ws(url, f"batchId={batch_id}") as ws:
                await client.post(f"/api/jobs/process/all/{batch_id}")
                everything = await read_ws(ws)
            cut = everything[len(everything) // 2]
            async with open_ws(url, f"batchId={batch_id}") as ws:
                await ws.send_message(orjson.dumps({"resumeFrom": cut.seq}).decode())
                replayed = await read_ws(ws)
            async with open_ws(url, f"batchId={batch_id}&resumeFrom={cut.seq}") as ws:
                replayed_by_query = await read_ws(ws)
    assert replayed == [e for e in everything if e.seq > cut.seq]
    assert replayed_by_query == replayed


async def test_sse_resumes_from_last_event_id_header_and_query(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            batch_id = await create_batch(client, "echo", list(range(8)))
            query = f"batchId={batch_id}"
            async with open_sse(url, query) as sse:
                await client.post(f"/api/jobs/process/all/{batch_id}")
                everything = await sse.read_until()
            cut = everything[len(everything) // 3]
            async with open_sse(url, query, {"Last-Event-ID": str(cut.seq)}) as sse:
                by_header = await sse.read_until()
            async with open_sse(url, f"{query}&lastEventId={cut.seq}") as sse:
                by_query = await sse.read_until()
            bad = await client.get("/api/events", headers={"Last-Event-ID": "x1"})
    expected = [e for e in everything if e.seq > cut.seq]
    assert by_header == expected and by_query == expected
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid-query"


#: Client messages that end a session, with the close code each gets.
_BAD_CONTROLS: list[tuple[str | bytes, int]] = [
    (b"\x00binary", 1003),
    ("not json", 1003),
    ('{"subscribe": "not-a-list"}', 1007),
    ('{"resumeFrom": -1}', 1007),
    ('{"subscribe": [], "resumeFrom": 1}', 1007),
    ("[1, 2]", 1007),
]


async def test_bad_control_messages_close_the_websocket(tmp_path: Path) -> None:
    codes = []
    with trio.fail_after(20):
        async with open_test_server(tmp_path) as (_, url):
            for message, _ in _BAD_CONTROLS:
                async with open_ws(url) as ws:
                    await ws.send_message(message)
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.get_message()
                codes.append(closed.value.reason.code)
    assert codes == [code for _, code in _BAD_CONTROLS]


async def test_a_bad_batch_id_query_refuses_the_handshake(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with (
            open_test_server(tmp_path) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            response = await client.get("/api/events", params={"batchId": "no spaces"})
            refused = pytest.RaisesGroup(ConnectionRejected, flatten_subgroups=True)
            with refused as group:
                async with open_ws(url, "batchId=no%20spaces"):
                    pass
    assert response.status_code == 400
    rejection = group.value.exceptions[0]
    while isinstance(rejection, BaseExceptionGroup):
        rejection = rejection.exceptions[0]
    assert isinstance(rejection, ConnectionRejected) and rejection.status_code == 400
    assert orjson.loads(rejection.body or b"")["error"]["code"] == "invalid-query"


async def test_a_slow_websocket_reader_is_closed_1013_and_a_fast_one_gets_everything(
    tmp_path: Path,
) -> None:
    # Events of 32 KiB fill the slow client's socket within a few hundred
    # events; each is published only once the fast client has it, so only the
    # slow client can fall behind.
    payload = "x" * 32 * 1024
    count = 600
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path, subscriber_buffer=8) as (engine, url),
            open_ws(url, max_message_size=2**20) as fast,
            open_ws(url, max_message_size=2**20) as slow,
        ):
            await trio.sleep(0.2)  # both sessions subscribed
            received = []
            for n in range(count):
                engine.publish(_blob("blob", n, payload))
                received.append(int(parse_ws_frame(await fast.get_message()).data.job_id))
            assert received == list(range(count))
            seen = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    seen.append(parse_ws_frame(await slow.get_message()).seq)
    assert closed.value.reason.code == 1013
    assert seen and len(seen) < count
    assert f"resume from {seen[-1]}" in (closed.value.reason.reason or "")


async def test_shutdown_sends_final_events_then_closes_1001_and_ends_sse(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            ws_events: list[Event] = []
            sse_items: list[Event | str] = []
            codes: list[int] = []

            async def watch_ws(url: str, task_status: trio.TaskStatus[None]) -> None:
                async with open_ws(url) as ws:
                    task_status.started()
                    try:
                        while True:
                            ws_events.append(parse_ws_frame(await ws.get_message()))
                    except ConnectionClosed as exc:
                        codes.append(exc.reason.code)

            async def watch_sse(url: str, task_status: trio.TaskStatus[None]) -> None:
                async with open_sse(url) as sse:
                    task_status.started()
                    sse_items.extend(await sse.rest())

            async with (
                open_test_server(tmp_path, shutdown_grace_seconds=1.0) as (engine, url),
                httpx.AsyncClient(base_url=url) as client,
            ):
                batch_id = await create_batch(client, "sleep", [{"seconds": 30}] * 2)
                await nursery.start(watch_ws, url)
                await nursery.start(watch_sse, url)
                await client.post(f"/api/jobs/process/all/{batch_id}")
                with engine.subscribe([batch_id], resume_from=0) as sub:
                    async for event in sub:
                        if event.event == "job:progress":
                            break
    assert codes == [1001]
    assert ws_events[-1].event == "done" and ws_events[-1].data.reason == "shutdown"
    assert [e for e in sse_items if isinstance(e, Event)] == ws_events
    assert sse_items[-1] == "shutdown"


async def test_a_client_that_stopped_reading_does_not_hold_the_server_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The client's socket fills up and the server's write to it blocks for
    # good; leaving the server must still end within a few seconds.
    release = trio.Event()

    async def hold(url: str, task_status: trio.TaskStatus[None]) -> None:
        async with open_ws(url) as ws:
            task_status.started()
            await release.wait()
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.get_message()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            async with open_test_server(tmp_path, subscriber_buffer=10_000) as (engine, url):
                await nursery.start(hold, url)
                await trio.sleep(0.2)  # subscribed
                for n in range(200):
                    engine.publish(_blob("b", n, "x" * 65536))
                    await trio.lowlevel.checkpoint()
                leaving = trio.current_time()
            took = trio.current_time() - leaving
            release.set()
    assert took < 5.0, took
    assert "shut down 1 connections still open" in caplog.text
