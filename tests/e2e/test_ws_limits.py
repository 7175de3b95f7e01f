"""Limits of one WebSocket connection: the size of a client's message and
the number of batches it follows."""

from __future__ import annotations

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed

from protocols.control import MAX_CLIENT_MESSAGE_BYTES, MAX_SUBSCRIBED_BATCHES
from protocols.events import CloseCode
from tests.conftest import Served
from tests.e2e.helpers import open_ws


def _ids(count: int, prefix: str = "b") -> list[str]:
    return [f"{prefix}{n}" for n in range(count)]


async def test_a_message_over_the_size_limit_closes_with_1009(server: Served) -> None:
    with trio.fail_after(20):
        async with open_ws(server.url) as ws:
            await ws.send_message("x" * (MAX_CLIENT_MESSAGE_BYTES + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
    assert closed.value.reason.code == CloseCode.MESSAGE_TOO_BIG


async def test_subscribing_past_the_limit_closes_with_1008(server: Served) -> None:
    half = MAX_SUBSCRIBED_BATCHES // 2
    with trio.fail_after(20):
        # Filtered from the start: an unfiltered connection follows every
        # batch already, and subscribing adds nothing to it.
        async with open_ws(server.url, "batchId=first") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                for prefix in ("a", "b"):
                    await ws.send_message(orjson.dumps({"subscribe": _ids(half, prefix)}).decode())
                await ws.get_message()
    assert closed.value.reason.code == CloseCode.POLICY_VIOLATION
    assert str(MAX_SUBSCRIBED_BATCHES) in (closed.value.reason.reason or "")


async def test_the_limit_itself_is_allowed_and_resubscribing_does_not_count(
    server: Served,
) -> None:
    ids = _ids(MAX_SUBSCRIBED_BATCHES)
    with trio.fail_after(20):
        async with open_ws(server.url, f"batchId={ids[0]}") as ws:
            for _ in range(3):
                await ws.send_message(orjson.dumps({"subscribe": ids}).decode())
            await ws.send_message(orjson.dumps({"unsubscribe": ids[:1]}).decode())
            await ws.send_message(orjson.dumps({"subscribe": ["another"]}).decode())
            with trio.move_on_after(0.5):
                await ws.get_message()  # nothing comes, and the connection stays
            assert not ws.closed


async def test_too_many_batch_ids_in_the_query_are_400(server: Served) -> None:
    query = "&".join(f"batchId={i}" for i in _ids(MAX_SUBSCRIBED_BATCHES + 1))
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=server.url) as client:
            sse = await client.get(f"/api/events?{query}")
            ws = await client.get(f"/ws?{query}")
    for answer in (sse, ws):
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "invalid-query"
