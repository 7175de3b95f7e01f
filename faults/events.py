"""Reading an engine's ``/ws`` as plain JSON frames, for the scenarios that
count events: what each ``completed`` or ``error`` concerned."""

from __future__ import annotations

from typing import Any

import orjson
import trio
import trio_websocket

__all__ = ["record_events", "ws_url"]


def ws_url(base_url: str, query: str = "batch=1") -> str:
    """The ``/ws`` URL of the server at ``base_url`` (``batch=1``: arrays)."""
    return base_url.replace("http://", "ws://", 1) + "/ws?" + query


async def record_events(
    base_url: str,
    sink: list[dict[str, Any]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Append every event frame of every batch to ``sink`` (replayed from
    the oldest the engine retained, then live) until the connection ends,
    as it does when the engine dies or shuts down. Started once connected."""
    try:
        async with trio_websocket.open_websocket_url(
            ws_url(base_url, "batch=1&resumeFrom=0"), connect_timeout=10
        ) as ws:
            task_status.started()
            while True:
                sink.extend(orjson.loads(await ws.get_message()))
    except (trio_websocket.ConnectionClosed, trio_websocket.HandshakeError, OSError):
        return
