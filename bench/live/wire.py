"""A minimal WebSocket subscriber for fan-out, cheap enough to run a thousand.

Design notes
------------
trio-websocket costs a few hundred microseconds of CPU per message here (a
task hand-off per message, wsproto's event objects); with a thousand
subscribers on a 2-core machine the clients would then measure themselves,
not the server. This client does the RFC 6455 handshake by hand, reads the
socket in large chunks and splits server frames (never masked, never
fragmented by this server) with ``struct``, so it costs a few microseconds
per frame. It speaks only what W6 needs: text frames in, one masked text
frame out (``{"resumeFrom": n}``), and the close frame's code.
"""

from __future__ import annotations

import base64
import os
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio

__all__ = ["Closed", "RawSubscriber", "open_raw_subscriber"]

_TEXT, _CLOSE, _PING = 0x1, 0x8, 0x9


class Closed(Exception):
    """The server closed the connection; ``code`` is its close code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return key + masked


def _client_frame(opcode: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + _mask(payload)


class RawSubscriber:
    """One connection's text frames, each with its arrival time."""

    def __init__(self, stream: trio.SocketStream, leftover: bytes) -> None:
        self._stream = stream
        self._buffer = bytearray(leftover)

    async def send_text(self, text: str) -> None:
        """Send one text frame (short control messages only).

        Cancellation: may have partially happened.
        """
        await self._stream.send_all(_client_frame(_TEXT, text.encode()))

    async def frames(self) -> AsyncIterator[tuple[bytes, float]]:
        """Yield ``(payload, arrival)`` for every text frame, in order.

        Raises:
            Closed: the server sent a close frame, or the connection ended.
        """
        while True:
            chunk = await self._stream.receive_some(256 * 1024)
            if not chunk:
                raise Closed(1006)
            arrived = time.monotonic()
            self._buffer += chunk
            for opcode, payload in self._split():
                if opcode == _TEXT:
                    yield payload, arrived
                elif opcode == _CLOSE:
                    raise Closed(struct.unpack("!H", payload[:2])[0] if payload else 1005)
                elif opcode == _PING:
                    await self._stream.send_all(_client_frame(0xA, payload))

    def _split(self) -> list[tuple[int, bytes]]:
        frames = []
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= 2:
            opcode = buffer[offset] & 0x0F
            length = buffer[offset + 1] & 0x7F
            header = 2
            if length == 126:
                if len(buffer) - offset < 4:
                    break
                length = struct.unpack_from("!H", buffer, offset + 2)[0]
                header = 4
            elif length == 127:
                if len(buffer) - offset < 10:
                    break
                length = struct.unpack_from("!Q", buffer, offset + 2)[0]
                header = 10
            if len(buffer) - offset < header + length:
                break
            start = offset + header
            frames.append((opcode, bytes(buffer[start : start + length])))
            offset = start + length
        del buffer[:offset]
        return frames


async def _handshake(stream: trio.SocketStream, host: str, target: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await stream.send_all(request.encode())
    seen = b""
    while b"\r\n\r\n" not in seen:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise Closed(1006)
        seen += chunk
    head, _, rest = seen.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise Closed(1002)
    return rest


@asynccontextmanager
async def open_raw_subscriber(ws_url: str, batch_id: str) -> AsyncIterator[RawSubscriber]:
    """A subscription to ``/ws?batchId=batch_id&batch=1`` (messages are
    arrays of frames), open once this yields.

    Raises:
        Closed: the upgrade was refused or the connection ended first.
        OSError: the server cannot be reached.
    """
    parts = urlsplit(ws_url)
    assert parts.hostname is not None and parts.port is not None
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    async with stream:
        leftover = await _handshake(stream, parts.netloc, f"/ws?batchId={batch_id}&batch=1")
        yield RawSubscriber(stream, leftover)
