"""The few HTTP calls and the WebSocket event stream the workloads need.

Plain httpx and trio-websocket, as any client of the contract would use
them (not ``engine.client``: the bench measures the wire protocol, not the
project's own client). Every frame is stamped with ``time.monotonic()``
the moment it is read from the socket, which is the arrival time the
latency workloads report; on Linux that is CLOCK_MONOTONIC, one clock for
every process of the machine, so stamps from a client subprocess compare
with stamps taken in the engine's process.
"""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import httpx
import orjson
import trio_websocket

__all__ = ["Api", "ApiError", "EventStream", "Frame", "open_api", "open_events"]


class ApiError(Exception):
    """The server answered a status the workload did not expect."""


@attrs.frozen(kw_only=True)
class Frame:
    """One event as a WebSocket client received it."""

    event: str
    seq: int
    data: dict[str, Any]
    arrived: float


class Api:
    """The HTTP calls of the contract that the workloads make."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def create_batch(self, type: str, payloads: Sequence[Any]) -> str:
        """``POST /api/batches``: the new batch's id.

        Cancellation: may have partially happened (the batch may exist).
        """
        body = {"type": type, "jobs": [{"payload": payload} for payload in payloads]}
        answer = await self._http.post("/api/batches", content=orjson.dumps(body))
        return str(self._expect(answer, 201)["batchId"])

    async def add_jobs(self, batch_id: str, payloads: Sequence[Any]) -> int:
        """``POST /api/batches/{batchId}/jobs``: how many were enqueued.

        Cancellation: may have partially happened.
        """
        body = {"jobs": [{"payload": payload} for payload in payloads]}
        answer = await self._http.post(f"/api/batches/{batch_id}/jobs", content=orjson.dumps(body))
        return int(self._expect(answer, 201)["enqueued"])

    async def process_all(self, batch_id: str) -> None:
        """``POST /api/jobs/process/all/{batchId}``, which must answer 200.

        Cancellation: may have partially happened (the run may have started).
        """
        self._expect(await self._http.post(f"/api/jobs/process/all/{batch_id}"), 200)

    async def batch(self, batch_id: str) -> dict[str, Any]:
        """``GET /api/batches/{batchId}``.

        Cancellation: atomic.
        """
        return self._expect(await self._http.get(f"/api/batches/{batch_id}"), 200)

    @staticmethod
    def _expect(answer: httpx.Response, status: int) -> dict[str, Any]:
        if answer.status_code != status:
            raise ApiError(f"{answer.request.url.path}: {answer.status_code} {answer.text[:300]}")
        body: dict[str, Any] = answer.json()
        return body


@asynccontextmanager
async def open_api(url: str) -> AsyncIterator[Api]:
    """An ``Api`` on one keep-alive connection to ``url``."""
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
        yield Api(http)


class EventStream:
    """The frames of one batch's WebSocket subscription, in order, each once.

    It asks for ``?batch=1``, as ``batchyard watch`` does: each message is a
    JSON array of the frames the server had queued for it, and each of them
    is stamped with the message's arrival. A subscriber the server drops as
    too slow (close 1013) reconnects and resumes from the last seq it saw, as
    the contract tells clients to; ``drops`` counts how often. Frames that
    arrive twice around a resume are delivered once (by seq).
    """

    def __init__(self, url: str, stack: AsyncExitStack) -> None:
        self._url = url
        self._stack = stack
        self._connection: trio_websocket.WebSocketConnection | None = None
        self._seen: set[int] = set()
        self._last_seq = 0
        #: Frames of the last message not yet handed out, and its arrival.
        self._queued: collections.deque[dict[str, Any]] = collections.deque()
        self._arrived = 0.0
        self.drops = 0

    async def connect(self) -> None:
        """Open the subscription (again, resuming, after a drop).

        Cancellation: may have partially happened.
        """
        await self._stack.aclose()
        self._queued.clear()
        self._connection = await self._stack.enter_async_context(
            trio_websocket.open_websocket_url(
                self._url, message_queue_size=64, connect_timeout=30, disconnect_timeout=5
            )
        )
        if self._last_seq:
            message = orjson.dumps({"resumeFrom": self._last_seq}).decode()
            await self._connection.send_message(message)

    async def next(self) -> Frame:
        """The next frame not seen before.

        Cancellation: atomic per frame.

        Raises:
            trio_websocket.ConnectionClosed: the server closed the stream for
                any other reason than a slow subscriber.
        """
        assert self._connection is not None, "connect() first"
        while True:
            if not self._queued:
                try:
                    raw = await self._connection.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    if exc.reason is None or exc.reason.code != _TRY_AGAIN_LATER:
                        raise
                    self.drops += 1
                    await self.connect()
                    continue
                self._arrived = time.monotonic()
                self._queued.extend(orjson.loads(raw))
                continue
            frame = self._queued.popleft()
            seq = frame["seq"]
            self._last_seq = seq
            if seq in self._seen:
                continue
            self._seen.add(seq)
            return Frame(event=frame["event"], seq=seq, data=frame["data"], arrived=self._arrived)

    async def until_end(self, batch_id: str) -> list[Frame]:
        """Every frame up to and including the batch run's ``done`` or ``error``.

        Cancellation: atomic per frame; the caller bounds the wait.
        """
        frames = []
        while True:
            frame = await self.next()
            frames.append(frame)
            if frame.event in ("done", "error") and frame.data.get("batchId") == batch_id:
                return frames


#: The close code of a subscriber dropped for being slow.
_TRY_AGAIN_LATER = 1013


@asynccontextmanager
async def open_events(ws_url: str, batch_id: str) -> AsyncIterator[EventStream]:
    """A WebSocket subscription to one batch's events (``/ws?batchId=&batch=1``).

    The server subscribes before it accepts, so every event published after
    this returns reaches the stream.
    """
    async with AsyncExitStack() as stack:
        stream = EventStream(f"{ws_url}/ws?batchId={batch_id}&batch=1", stack)
        await stream.connect()
        yield stream
