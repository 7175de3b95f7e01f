"""Events in batches against a real server: ``/ws?batch=1`` arrays, and a
burst written at once over WebSocket and SSE."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection

from engine.core.engine import Engine
from engine.testing import open_test_server
from protocols.events import Event, JobUpdate, ProcessingStarted, ends_run
from protocols.frames import parse_ws_message
from protocols.lifecycle import JobState
from tests.e2e.helpers import create_batch, open_sse, open_ws, read_ws


async def _messages_until(ws: WebSocketConnection, last_seq: int) -> list[list[Event]]:
    """Every message's events, up to the message holding ``last_seq``; each
    message must be an array."""
    messages: list[list[Event]] = []
    while not messages or messages[-1][-1].seq < last_seq:
        raw = await ws.get_message()
        assert isinstance(orjson.loads(raw), list), raw[:80]
        messages.append(parse_ws_message(raw))
    return messages


def _burst(engine: Engine, batch_id: str, count: int) -> list[Event]:
    """``count`` events published at once, with no checkpoint between them."""
    published = [engine.publish(ProcessingStarted(batch_id=batch_id)) for _ in range(count)]
    assert all(event is not None for event in published)
    return [event for event in published if event is not None]


async def test_a_batch_client_gets_a_run_as_arrays_the_same_as_a_frame_client(
    tmp_path: Path,
) -> None:
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            batch_id = await create_batch(client, "echo", list(range(20)))
            async with (
                open_ws(url, f"batchId={batch_id}&batch=1") as batched,
                open_ws(url, f"batchId={batch_id}") as framed,
            ):
                await client.post(f"/api/jobs/process/all/{batch_id}")
                single = await read_ws(framed)
                messages: list[list[Event]] = []
                while not messages or not ends_run(messages[-1][-1]):
                    raw = await batched.get_message()
                    assert isinstance(orjson.loads(raw), list)
                    messages.append(parse_ws_message(raw))
    assert [event for message in messages for event in message] == single
    assert single[-1].event == "done"


async def test_a_burst_comes_as_fewer_arrays_than_events_in_seq_order(tmp_path: Path) -> None:
    count = 500
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path) as (engine, url),
            open_ws(url, "batchId=b&batch=1") as ws,
        ):
            await trio.sleep(0.2)  # subscribed
            first = _burst(engine, "b", count)
            await trio.sleep(0.05)
            second = _burst(engine, "b", count)
            messages = await _messages_until(ws, second[-1].seq)
    received = [event for message in messages for event in message]
    assert received == first + second
    assert len(messages) < 2 * count


async def test_a_batch_flag_other_than_0_or_1_refuses_the_handshake(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_test_server(tmp_path) as (_, url):
            refused = pytest.RaisesGroup(ConnectionRejected, flatten_subgroups=True)
            with refused as group:
                async with open_ws(url, "batch=yes"):
                    pass
    rejection = group.value.exceptions[0]
    while isinstance(rejection, BaseExceptionGroup):
        rejection = rejection.exceptions[0]
    assert isinstance(rejection, ConnectionRejected) and rejection.status_code == 400
    assert (
        "batch='yes' is invalid: expected one of 0, 1"
        in orjson.loads(rejection.body or b"")["error"]["message"]
    )


async def test_a_slow_batch_reader_is_closed_1013_and_resumes_with_nothing_lost(
    tmp_path: Path,
) -> None:
    # As for single frames: 32 KiB events fill the slow client's socket while
    # the fast client, which each event waits for, keeps up.
    payload = "x" * 32 * 1024
    count = 600
    with trio.fail_after(60):
        async with (
            open_test_server(tmp_path, subscriber_buffer=8) as (engine, url),
            open_ws(url, "batch=1", max_message_size=2**20) as fast,
            open_ws(url, "batch=1", max_message_size=2**20) as slow,
        ):
            await trio.sleep(0.2)  # both sessions subscribed
            published = []
            for n in range(count):
                event = engine.publish(
                    JobUpdate(
                        batch_id="blob", job_id=str(n), status=JobState.FAILED, error=payload
                    )
                )
                assert event is not None
                published.append(event.seq)
                received = await _messages_until(fast, event.seq)
                assert [e.seq for message in received for e in message] == [event.seq]
            seen: list[int] = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    seen.extend(e.seq for e in parse_ws_message(await slow.get_message()))
            async with open_ws(url, f"batch=1&resumeFrom={seen[-1]}") as again:
                rest = await _messages_until(again, published[-1])
    assert closed.value.reason.code == 1013
    assert seen and len(seen) < count
    assert f"resume from {seen[-1]}" in (closed.value.reason.reason or "")
    assert seen + [e.seq for message in rest for e in message] == published


async def test_an_sse_burst_comes_in_fewer_chunks_than_events(tmp_path: Path) -> None:
    count = 300
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path) as (engine, url),
            open_sse(url, "batchId=b") as sse,
        ):
            await trio.sleep(0.2)  # subscribed
            before = sse.chunks
            published = _burst(engine, "b", count)
            received = await sse.read_until(lambda event: event.seq == published[-1].seq)
            chunks = sse.chunks - before
    assert received == published
    assert 1 <= chunks < count
