"""Following batches over the server's ``/ws``, across dropped connections.

Design notes
------------
``open_watch`` owns a nursery for the connection's tasks, so it is a context
manager, and hands out an ``EventStream`` to iterate: an object, not an async
generator, because a reconnect opens a new connection in that nursery and a
generator must not suspend inside a nursery it entered. Each connection runs
in a task of its own (``_hold``), so a handshake the server refuses fails that
task's start and surfaces as one ``ClientError``, never as an exception group
torn out of the watch's nursery.

It asks for ``?batch=1``: each message is an array of the frames queued
for it, so a burst of events costs one message, not one per event, and a
watch that keeps up is not dropped as slow because a burst was large. The
events of a message wait in the stream and are delivered one by one; a new
message is read only once they are all delivered, so a reconnect never
happens with events still waiting.

The stream remembers the last ``seq`` it delivered. When the connection
drops it reconnects with backoff, naming every watched batch and
``resumeFrom=seq`` in the query: the server subscribes the new connection
with that replay before any live event, so nothing is lost or reordered,
and anything at or below ``seq`` is skipped, so nothing is delivered twice.
A first frame below ``seq`` after a reconnect means the server numbers
afresh (it was restarted), and is delivered. Close code
``GOING_AWAY`` (the server is shutting down) ends the stream quietly with
``ended_by`` saying so; ``POLICY_VIOLATION`` (auth) and the protocol-fault
codes are errors; any other drop (a slow subscriber cut off with
``TRY_AGAIN_LATER``, a reset connection) is a reason to reconnect. What each
code means is decided where every foreign error is translated,
``engine.client.errors.translate_errors``; this module only acts on
``ClientError.transient`` and ``close_code``.

A run ends as ``protocols.events.ends_run`` says. The stream ends after the
event that ends the last watched run, unless it follows.
"""

from __future__ import annotations

import collections
import contextlib
import ssl
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlencode

import trio
import trio_websocket

from engine.client.errors import ClientError, translate_errors
from engine.client.http import CONNECT_TIMEOUT, BatchyardClient, ServerAddress
from protocols import events, frames

__all__ = ["EventStream", "open_watch"]

_Held = tuple[trio_websocket.WebSocketConnection, trio.CancelScope]

#: Reconnecting: the first retry comes quickly (most drops are a slow
#: subscriber cut off, and the server is right there), then the wait doubles
#: up to a cap. A server restarted by its supervisor is back within seconds;
#: after ``_RECONNECT_FOR`` of failures the watch gives up with an error
#: instead of hanging on a server that is gone.
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 2.0
_RECONNECT_FOR = 30.0

#: Closing politely waits for the server's close frame; a server that does
#: not answer within this bound is cut off.
_CLOSE_TIMEOUT = 1.0


def _resource(client: BatchyardClient, batch_ids: Sequence[str], resume_from: int) -> str:
    """``/ws`` under the server's prefix: the batches, arrays of frames, the
    replay point, the token."""
    query: list[tuple[str, str | int]] = [("batchId", batch_id) for batch_id in batch_ids]
    query.append(("batch", 1))
    if resume_from:
        query.append(("resumeFrom", resume_from))
    if client.token:
        query.append(("token", client.token))
    tail = f"?{urlencode(query)}" if query else ""
    return f"{client.address.prefix}/ws{tail}"


def _host_header(address: ServerAddress) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    default = 443 if address.tls else 80
    return host if address.port == default else f"{host}:{address.port}"


async def _open_stream(
    address: ServerAddress,
) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    if address.tls:
        return await trio.open_ssl_over_tcp_stream(
            address.host, address.port, ssl_context=ssl.create_default_context()
        )
    return await trio.open_tcp_stream(address.host, address.port)


@contextlib.asynccontextmanager
async def open_watch(
    client: BatchyardClient, batch_ids: Sequence[str] = (), *, follow: bool = False
) -> AsyncIterator[EventStream]:
    """Follow the events of ``batch_ids`` on ``client``'s server (all batches when empty).

    The first connection is made, and the batches subscribed, before the
    block runs, so an unreachable server or a refused token fails here. The
    stream ends once every watched batch's run has ended, unless ``follow``
    or no batch is named; it also ends when the server shuts down.

    Args:
        client: the server, and the token to present.
        batch_ids: the batches to watch.
        follow: keep watching after the runs end.

    Yields:
        The stream of events, to iterate with ``async for``.

    Raises:
        ClientError: the server is unreachable or refused the watch, or a
            dropped connection could not be re-established.

    Cancellation: the connection is closed (bounded by a short timeout).
    """
    try:
        async with trio.open_nursery() as nursery:
            stream = EventStream(nursery, client, batch_ids, follow=follow or not batch_ids)
            try:
                await stream.connect()
                yield stream
            finally:
                await stream.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The nursery wraps whatever the block raised; callers expect the
        # error itself, as from any other call.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


class EventStream:
    """The events of a watch, across reconnects; made by ``open_watch``.

    Attributes:
        last_seq: the ``seq`` of the last event delivered (0 before any).
        ended_by: why the server ended the stream early (it shut down), or
            ``None``.
        reconnects: how many times a dropped connection was re-established.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        client: BatchyardClient,
        batch_ids: Sequence[str],
        *,
        follow: bool,
    ) -> None:
        self._nursery = nursery
        self._client = client
        self._where = client.base_url
        self._address = client.address
        self._batch_ids = tuple(batch_ids)
        token = client.token
        self._headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self._open_runs = set(batch_ids)
        self._follow = follow
        self._ws: trio_websocket.WebSocketConnection | None = None
        self._scope: trio.CancelScope | None = None
        self._resumed_from = 0  # set by a resume until the next frame arrives
        self._waiting: collections.deque[events.Event] = collections.deque()
        self._closed = False
        self._done = False
        self.last_seq = 0
        self.ended_by: str | None = None
        self.reconnects = 0

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> events.Event:
        while not self._done and not self._closed:
            event = await self._receive()
            if event is None:
                self._closed = True
            elif self._is_new(event):
                self.last_seq = event.seq
                self._note(event)
                return event
        self._done = True
        raise StopAsyncIteration

    def _is_new(self, event: events.Event) -> bool:
        resumed_from, self._resumed_from = self._resumed_from, 0
        # Replay sends only seqs above the resume point, so a first frame
        # below it means the server numbers afresh: it was restarted.
        return event.seq > self.last_seq or event.seq < resumed_from

    def _note(self, event: events.Event) -> None:
        if events.ends_run(event):
            self._open_runs.discard(event.data.batch_id)
            if not self._open_runs and not self._follow:
                self._done = True

    async def _receive(self) -> events.Event | None:
        """The next event received, reconnecting as needed; ``None`` at the end."""
        while not self._waiting:
            try:
                self._waiting.extend(await self._next_message())
            except ClientError as exc:
                if exc.close_code == events.CloseCode.GOING_AWAY:
                    self.ended_by = str(exc)
                    return None
                if not exc.transient:
                    raise
                await self._reconnect()
        return self._waiting.popleft()

    async def _next_message(self) -> list[events.Event]:
        assert self._ws is not None
        with translate_errors(self._where):
            return frames.parse_ws_message(await self._ws.get_message())

    async def connect(self) -> None:
        """Open a connection, subscribe, and resume after ``last_seq`` if any.

        Raises:
            ClientError: the server is unreachable or refused.

        Cancellation: may have partially happened: a connection may be open
        (``aclose`` closes it).
        """
        resource = _resource(self._client, self._batch_ids, self.last_seq)
        self._ws, self._scope = await self._nursery.start(self._hold, resource)
        self._resumed_from = self.last_seq

    async def _hold(
        self, resource: str, task_status: trio.TaskStatus[_Held] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """One connection, kept open until the scope it hands out is cancelled."""
        with translate_errors(self._where):
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await _open_stream(self._address)
            try:
                async with trio.open_nursery() as nursery:
                    with trio.fail_after(CONNECT_TIMEOUT):
                        ws = await trio_websocket.wrap_client_stream(
                            nursery,
                            stream,
                            _host_header(self._address),
                            resource,
                            extra_headers=self._headers,
                        )
                    task_status.started((ws, nursery.cancel_scope))
                    await trio.sleep_forever()
            finally:
                await trio.aclose_forcefully(stream)

    async def _reconnect(self) -> None:
        await self.aclose()
        delay = _BACKOFF_FIRST
        give_up = trio.current_time() + _RECONNECT_FOR
        while True:
            await trio.sleep(delay)
            try:
                await self.connect()
            except ClientError as exc:
                if not exc.transient or trio.current_time() + delay > give_up:
                    raise ClientError(f"lost the watch and could not reconnect: {exc}") from exc
                delay = min(delay * 2, _BACKOFF_MAX)
            else:
                self.reconnects += 1
                return

    async def aclose(self) -> None:
        """Close the current connection, politely if the server answers in time.

        Cancellation: the connection is closed all the same (the close is
        shielded, and bounded by a short timeout).
        """
        ws, scope = self._ws, self._scope
        self._ws = self._scope = None
        if ws is not None:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await ws.aclose()
        if scope is not None:
            scope.cancel()
