"""Bearer-token auth: /api/*, /ws and /metrics need it; /health, / and the
OpenAPI document stay open."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from engine.testing import open_test_server
from protocols.events import ProcessingStarted
from protocols.frames import parse_ws_frame
from tests.e2e.helpers import open_ws

TOKEN = "s3cret-token"


async def test_requests_without_the_token_get_401_json(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with (
            open_test_server(tmp_path, token=TOKEN) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            refused = {
                path: await client.get(path, headers=headers)
                for path, headers in [
                    ("/api/status", {}),
                    ("/api/batches", {"Authorization": "Bearer wrong"}),
                    ("/api/nothing", {}),
                    ("/api/events", {}),
                    ("/metrics", {"Authorization": f"Basic {TOKEN}"}),
                ]
            }
            allowed = [
                await client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"}),
                await client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}),
                await client.get("/health"),
                await client.get("/"),
                await client.get("/openapi.json"),
            ]
    for path, response in refused.items():
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert [r.status_code for r in allowed] == [200] * 5


async def test_websocket_without_the_token_is_closed_1008(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_test_server(tmp_path, token=TOKEN) as (engine, url):
            async with open_ws(url) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
            async with open_ws(url, "token=wrong") as ws:
                with pytest.raises(ConnectionClosed) as wrong:
                    await ws.get_message()
            header = [(b"authorization", f"Bearer {TOKEN}".encode())]
            async with (
                open_ws(url, f"token={TOKEN}") as by_query,
                open_ws(url, extra_headers=header) as by_header,
            ):
                await trio.sleep(0.2)  # both sessions subscribed
                engine.publish(ProcessingStarted(batch_id="b"))
                frames = [await by_query.get_message(), await by_header.get_message()]
    assert closed.value.reason.code == 1008 and wrong.value.reason.code == 1008
    assert [parse_ws_frame(f).event for f in frames] == ["processing:started"] * 2


async def test_without_a_token_everything_is_open(client: httpx.AsyncClient) -> None:
    with trio.fail_after(20):
        responses = [await client.get(path) for path in ("/api/status", "/metrics", "/")]
    assert [r.status_code for r in responses] == [200, 200, 200]
