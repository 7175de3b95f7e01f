"""``/openapi.json`` against the server that serves it: the event routes are
described as what they are, and ``/ws`` answers plain HTTP as documented."""

from __future__ import annotations

import httpx
import trio

from tests.conftest import Served


async def test_a_plain_get_of_ws_is_426_and_other_methods_405(client: httpx.AsyncClient) -> None:
    with trio.fail_after(20):
        plain = await client.get("/ws")
        bad_query = await client.get("/ws", params={"resumeFrom": "-1"})
        trace = await client.request("TRACE", "/ws")
        post = await client.post("/ws")
    assert plain.status_code == 426
    assert plain.headers["upgrade"] == "websocket"
    assert plain.json()["error"]["code"] == "upgrade-required"
    assert bad_query.status_code == 400
    assert bad_query.json()["error"]["code"] == "invalid-query"
    for refused in (trace, post):
        assert refused.status_code == 405
        assert set(refused.headers["allow"].split(", ")) == {"GET", "HEAD"}
        assert refused.json()["error"]["code"] == "method-not-allowed"


async def test_the_document_describes_streams_and_this_servers_job_types(
    server: Served, client: httpx.AsyncClient
) -> None:
    with trio.fail_after(20):
        document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    ws = paths["/ws"]["get"]
    assert set(ws["responses"]) == {"101", "400", "426"}
    assert {p["name"] for p in ws["parameters"]} == {"batchId", "resumeFrom", "batch", "token"}
    sse = paths["/api/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
    assert sse["schema"]["required"] == ["id", "event", "data"]
    assert "done" in sse["schema"]["properties"]["event"]["enum"]
    job_type = document["components"]["schemas"]["CreateBatch"]["properties"]["type"]
    assert job_type["enum"] == sorted(server.engine.registry.names())
    limit = next(
        p
        for p in paths["/api/batches/{batchId}/jobs"]["get"]["parameters"]
        if p["name"] == "limit"
    )
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert "securitySchemes" not in document["components"]
