"""Clients for the end-to-end tests: WebSocket and SSE readers, batch set-up."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import h11
import httpx
import orjson
import psutil
import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

from protocols.codec import CONVERTER
from protocols.events import EVENT_TYPES, Event
from protocols.frames import parse_ws_frame

__all__ = ["SseClient", "create_batch", "is_done", "open_sse", "open_ws", "read_ws"]


def _address(base_url: str) -> tuple[str, int]:
    host, _, port = base_url.removeprefix("http://").rpartition(":")
    return host, int(port)


@asynccontextmanager
async def open_ws(
    base_url: str, query: str = "", **options: Any
) -> AsyncIterator[WebSocketConnection]:
    """A WebSocket client of ``/ws?query`` on a TCP stream this helper owns.

    trio-websocket's own ``open_websocket_url`` leaves the socket open when
    the server closes first (it waits for a TCP close it never acts on), so
    the stream is closed here whoever closed the WebSocket.
    """
    host, port = _address(base_url)
    resource = "/ws" + (f"?{query}" if query else "")
    async with trio.open_nursery() as nursery:
        stream = await trio.open_tcp_stream(host, port)
        try:
            ws = await wrap_client_stream(nursery, stream, host, resource, **options)
            try:
                yield ws
            finally:
                await ws.aclose()
        finally:
            await stream.aclose()


def is_done(event: Event) -> bool:
    return event.event == "done"


async def read_ws(ws: WebSocketConnection, last: Callable[[Event], bool] = is_done) -> list[Event]:
    """Frames of ``ws`` up to and including the first ``last`` one."""
    seen: list[Event] = []
    while not seen or not last(seen[-1]):
        seen.append(parse_ws_frame(await ws.get_message()))
    return seen


class SseClient:
    """A minimal SSE client on h11: the status, the headers, then items.

    httpx's streaming iterators are nested async generators that cannot all
    be closed when a test stops reading mid-stream; this reads the socket
    itself. ``chunks`` counts the HTTP chunks of the body read so far: one
    per write of the server.
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._http = h11.Connection(h11.CLIENT)
        self._text = ""
        self._ended = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks = 0

    async def _send(self, *events: h11.Event) -> None:
        for event in events:
            data = self._http.send(event)
            if data:
                await self._stream.send_all(data)

    async def _next_http_event(self) -> h11.Event:
        while True:
            event = self._http.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            self._http.receive_data(await self._stream.receive_some(65536))

    async def start(self, target: str, headers: dict[str, str]) -> None:
        request_headers = [("host", "test"), ("accept", "text/event-stream"), *headers.items()]
        await self._send(h11.Request(method="GET", target=target, headers=request_headers))
        await self._send(h11.EndOfMessage())
        response = await self._next_http_event()
        assert isinstance(response, h11.Response)
        self.status = response.status_code
        self.headers = {k.decode(): v.decode() for k, v in response.headers}

    async def _block(self) -> str | None:
        while "\n\n" not in self._text:
            if self._ended:
                return None
            event = await self._next_http_event()
            if isinstance(event, h11.Data):
                self._text += bytes(event.data).decode()
                self.chunks += event.chunk_end
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self._ended = True
        block, _, self._text = self._text.partition("\n\n")
        return block

    async def next_item(self) -> Event | str | None:
        """The next event, or comment text, or None once the response ended."""
        block = await self._block()
        if block is None:
            return None
        if block.startswith(":"):
            return block[1:].strip()
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        data = CONVERTER.structure(orjson.loads(fields["data"]), EVENT_TYPES[fields["event"]])
        return Event(seq=int(fields["id"]), data=data)

    async def read_until(self, last: Callable[[Event], bool] = is_done) -> list[Event]:
        """Events up to and including the first ``last`` one."""
        seen: list[Event] = []
        while not seen or not last(seen[-1]):
            item = await self.next_item()
            assert item is not None, f"the stream ended after {seen}"
            if isinstance(item, Event):
                seen.append(item)
        return seen

    async def rest(self) -> list[Event | str]:
        """Every item until the response ends."""
        items: list[Event | str] = []
        while (item := await self.next_item()) is not None:
            items.append(item)
        return items


@asynccontextmanager
async def open_sse(
    base_url: str, query: str = "", headers: dict[str, str] | None = None
) -> AsyncIterator[SseClient]:
    """``GET /api/events?query`` on a connection of its own."""
    host, port = _address(base_url)
    async with await trio.open_tcp_stream(host, port) as stream:
        client = SseClient(stream)
        await client.start("/api/events" + (f"?{query}" if query else ""), headers or {})
        yield client


async def create_batch(
    client: httpx.AsyncClient, type: str, payloads: list[Any], **fields: Any
) -> str:
    """Creates a batch of ``type`` jobs over the API; its id."""
    body = {"type": type, "jobs": [{"payload": p} for p in payloads], **fields}
    response = await client.post("/api/batches", json=body)
    assert response.status_code == 201, response.text
    batch_id: str = response.json()["batchId"]
    return batch_id


def child_processes() -> list[psutil.Process]:
    """This test process's batch children (``python -m engine.child``); a
    Redis server a fixture started is a child too, and is not counted."""
    found = []
    for process in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if "engine.child" in " ".join(process.cmdline()):
                found.append(process)
    return found
