"""Live events over Server-Sent Events (``GET /api/events``) and WebSocket (``/ws``).

Design notes
------------
Each client gets its own bus subscription, filtered by the ``batchId`` query
parameters (none: every batch). The bus never waits for a client: when a
client's buffer is full it is dropped (``dropped_reason`` is
``"slow-subscriber"``), and this module ends that client's stream at once
(WebSocket close 1013, reason naming the last seq it was sent) rather than
first draining what is buffered; the client resumes from its last seq out of
the replay ring. When the bus closes (engine shutdown) a client first gets
everything still buffered, the runs' final events among them, then close
1001 or the end of the SSE response.

The server writes to a socket only as fast as the client reads (the ASGI
server's ``send`` blocks on a full socket), so a client that stops reading
stalls only its own handler, whose subscription then overflows and is
dropped; the engine and the other clients never wait for it.

A client's pending events go out together: once its handler has an event
to send, it takes everything its subscription holds at once
(``receive_queued``) and writes it as one SSE chunk, or with ``?batch=1``
one WebSocket message holding a JSON array of the frames (more than one
only past ``WRITE_BUDGET`` bytes, as after a long replay). The
subscription's buffer counts events, so a client that keeps up with one
write per burst is never dropped because a burst held many events. Without
``batch=1`` each event stays a WebSocket message of its own, and each
message is a write of its own: an ASGI ``websocket.send`` carries one
message, and the server writes each one to the socket as it comes. Each
event's frames are encoded once for every client, and so is each burst's
message (``engine.server.encoded``): the subscribers of a batch woken by
one publication take the same events, and all but the first find their
message made. A client's writes are paced (``engine.server.pacing``): at
most one per round of writes over every client, so that with many clients
each write carries more events and the rounds leave the engine its turn.

A WebSocket session is two tasks: one pumps events out, the other reads
control messages. A reconnecting client passes ``resumeFrom=n`` in the query
(beside its ``batchId``s), so its subscription replays from ``n`` before the
first live event and nothing can slip ahead of the replay. The
``{"resumeFrom": n}`` message does the same on a live session: it replaces
the subscription by a new one with ``resume_from=n`` and the current filter;
the pump notices the replacement and skips what the old one still held.
Close codes (``CloseCode``): ``UNSUPPORTED_DATA`` for a binary or non-JSON
message, ``INVALID_PAYLOAD`` for JSON that is not a valid control message,
``POLICY_VIOLATION`` past ``MAX_SUBSCRIBED_BATCHES`` batches subscribed,
``MESSAGE_TOO_BIG`` (hypercorn's) for a message over the server's limit,
``TRY_AGAIN_LATER`` dropped as slow, ``GOING_AWAY`` shutdown.

SSE sends a comment line every ``KEEPALIVE_SECONDS`` when nothing happens,
so proxies and load balancers do not time an idle stream out; the
``Last-Event-ID`` header (or ``lastEventId`` query parameter, which a page
can set on its first connect) replays what the ring retained after it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING

import orjson
import trio
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from engine.core.bus import BUS_CLOSED, SLOW_SUBSCRIBER, Subscription
from engine.core.engine import Engine
from engine.server import queries
from engine.server.encoded import Frames
from engine.server.errors import RequestError, error_response
from engine.server.metrics import ServerMetrics
from engine.server.pacing import WritePace, take_paced
from protocols.control import (
    MAX_SUBSCRIBED_BATCHES,
    ControlMessage,
    ResumeFrom,
    Subscribe,
    parse_control,
)
from protocols.errors import RemoteProtocolError
from protocols.events import CloseCode

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

__all__ = ["KEEPALIVE_SECONDS", "event_routes"]

#: Proxies commonly drop a connection idle for 30 to 60 seconds.
KEEPALIVE_SECONDS = 15.0

#: RFC 6455 allows 123 bytes of close reason.
_MAX_REASON_BYTES = 123

Close = tuple[CloseCode, str]


def _batch_ids(values: list[str]) -> set[str] | None:
    return set(queries.BATCH_IDS.parse_all(values)) or None


def _reason(text: str) -> str:
    return text.encode()[:_MAX_REASON_BYTES].decode(errors="ignore")


def _ended(subscription: Subscription) -> Close:
    if subscription.dropped_reason == SLOW_SUBSCRIBER:
        return CloseCode.TRY_AGAIN_LATER, f"slow subscriber; resume from {subscription.last_seq}"
    return CloseCode.GOING_AWAY, "server shutting down"


# --- Server-Sent Events ------------------------------------------------------------


class _EventStream(Response):
    """A ``text/event-stream`` response that owns one subscription."""

    media_type = "text/event-stream"

    def __init__(
        self,
        engine: Engine,
        metrics: ServerMetrics,
        frames: Frames,
        pace: WritePace,
        batch_ids: Collection[str] | None,
        resume_from: int | None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._engine = engine
        self._metrics = metrics
        self._frames = frames
        self._pace = pace
        self._batch_ids = batch_ids
        self._resume_from = resume_from

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscription = self._engine.subscribe(self._batch_ids, resume_from=self._resume_from)
        disconnected = False
        with subscription, self._metrics.connected("sse"), self._pace.client():
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with trio.open_nursery() as nursery:

                async def end_on_disconnect() -> None:
                    nonlocal disconnected
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    disconnected = True
                    nursery.cancel_scope.cancel()

                nursery.start_soon(end_on_disconnect)
                await _pump_sse(subscription, self._frames, self._pace, send)
                nursery.cancel_scope.cancel()
        if not disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_chunk(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _pump_sse(
    subscription: Subscription, frames: Frames, pace: WritePace, send: Send
) -> None:
    last_write = -math.inf
    while True:
        chunks = [b": keep-alive\n\n"]
        with trio.move_on_after(KEEPALIVE_SECONDS):
            try:
                events = await take_paced(subscription, pace, last_write)
            except trio.EndOfChannel:
                break
            chunks = frames.sse_chunks(events)
            last_write = trio.current_time()
        for chunk in chunks:
            await _send_chunk(send, chunk)
    await _send_chunk(send, b": %s\n\n" % (subscription.dropped_reason or BUS_CLOSED).encode())


# --- WebSocket ----------------------------------------------------------------------


class _Feed:
    """The subscription a WebSocket session reads now (``resumeFrom`` replaces
    it), and whether the client takes arrays of frames (``?batch=1``)."""

    def __init__(
        self,
        engine: Engine,
        frames: Frames,
        pace: WritePace,
        batch_ids: Collection[str] | None,
        resume_from: int | None,
        *,
        batch: bool,
    ) -> None:
        self._engine = engine
        self.frames = frames
        self.pace = pace
        self.batch = batch
        self.current = engine.subscribe(batch_ids, resume_from=resume_from)

    def apply(self, message: ControlMessage) -> Close | None:
        """Apply a control message; the close it calls for, if any."""
        if isinstance(message, Subscribe):
            self.current.subscribe(message.subscribe)
            if len(self.current.batch_ids or ()) > MAX_SUBSCRIBED_BATCHES:
                reason = f"more than {MAX_SUBSCRIBED_BATCHES} batches subscribed"
                return CloseCode.POLICY_VIOLATION, reason
        elif isinstance(message, ResumeFrom):
            old = self.current
            self.current = self._engine.subscribe(old.batch_ids, resume_from=message.resume_from)
            old.close()
        else:
            self.current.unsubscribe(message.unsubscribe)
        return None

    def close(self) -> None:
        self.current.close()


async def _pump_ws(websocket: WebSocket, feed: _Feed) -> Close:
    last_write = -math.inf
    while True:
        subscription = feed.current
        try:
            events = await take_paced(subscription, feed.pace, last_write)
        except trio.EndOfChannel:
            if subscription is feed.current:
                return _ended(subscription)
            continue
        last_write = trio.current_time()
        frames = feed.frames
        messages = frames.ws_arrays(events) if feed.batch else frames.ws_frames(events)
        for message in messages:
            if subscription is not feed.current:
                break  # resumeFrom replaced it: what it held is not sent
            await websocket.send({"type": "websocket.send", "text": message})


async def _read_controls(websocket: WebSocket, feed: _Feed) -> Close | None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None:
            return CloseCode.UNSUPPORTED_DATA, "binary messages are not supported"
        try:
            refusal = feed.apply(parse_control(text))
        except RemoteProtocolError as exc:
            # parse_control chains the JSON decoder's error when it is not JSON at all.
            not_json = isinstance(exc.__cause__, orjson.JSONDecodeError)
            code = CloseCode.UNSUPPORTED_DATA if not_json else CloseCode.INVALID_PAYLOAD
            return code, _reason(str(exc))
        if refusal is not None:
            return refusal


async def _session(websocket: WebSocket, feed: _Feed) -> Close | None:
    """Runs the pump and the control reader until either ends; what it decided."""
    outcome: Close | None = None
    async with trio.open_nursery() as nursery:

        async def first(task: Callable[[WebSocket, _Feed], Awaitable[Close | None]]) -> None:
            nonlocal outcome
            outcome = await task(websocket, feed)
            nursery.cancel_scope.cancel()

        nursery.start_soon(first, _pump_ws)
        nursery.start_soon(first, _read_controls)
    return outcome


class _Endpoints:
    def __init__(self, engine: Engine, metrics: ServerMetrics) -> None:
        self._engine = engine
        self._metrics = metrics
        self._frames = Frames()
        self._pace = WritePace()

    async def sse(self, request: Request) -> Response:
        batch_ids = _batch_ids(request.query_params.getlist("batchId"))
        header = request.headers.get("last-event-id", "").strip()
        resume_from = (
            queries.LAST_EVENT_ID.value(header)
            if header
            else queries.LAST_EVENT_ID.parse(request.query_params)
        )
        return _EventStream(
            self._engine, self._metrics, self._frames, self._pace, batch_ids, resume_from
        )

    async def websocket(self, websocket: WebSocket) -> None:
        try:
            batch_ids, resume_from, batch = _ws_query(websocket.query_params)
        except RequestError as exc:
            await websocket.send_denial_response(error_response(exc))
            return
        feed = _Feed(self._engine, self._frames, self._pace, batch_ids, resume_from, batch=batch)
        try:
            await websocket.accept()
            with self._metrics.connected("ws"), self._pace.client():
                outcome = await _session(websocket, feed)
        finally:
            feed.close()
        if outcome is not None:
            await websocket.close(outcome[0], _reason(outcome[1]))


def _ws_query(params: QueryParams) -> tuple[set[str] | None, int | None, bool]:
    """``/ws``'s batch ids, ``resumeFrom`` and ``batch`` flag.

    Raises:
        RequestError: 400 for a value the document does not allow.
    """
    batch_ids = _batch_ids(params.getlist(queries.BATCH_IDS.name))
    return batch_ids, queries.RESUME_FROM.parse(params), bool(queries.BATCH_FLAG.parse(params))


async def _not_upgraded(request: Request) -> Response:
    # A plain GET of /ws: the resource exists, only over a WebSocket. Its
    # query is checked first, as a handshake's would be.
    _ws_query(request.query_params)
    refusal = RequestError(
        426,
        "upgrade-required",
        "/ws is a WebSocket: send a WebSocket handshake (Upgrade: websocket)",
        {"Upgrade": "websocket", "Connection": "Upgrade"},
    )
    return error_response(refusal)


def event_routes(engine: Engine, metrics: ServerMetrics) -> list[BaseRoute]:
    """``GET /api/events`` and ``WS /ws``, fed by ``engine``'s subscriptions,
    and the 426 answer to a ``GET /ws`` that is not a WebSocket handshake."""
    endpoints = _Endpoints(engine, metrics)
    return [
        Route("/api/events", endpoints.sse, methods=["GET"]),
        WebSocketRoute("/ws", endpoints.websocket),
        Route("/ws", _not_upgraded, methods=["GET"]),
    ]
