"""Latency of the served API, end to end over loopback.

Two measurements against a real server (hypercorn, the engine, real child
processes) on a throwaway store:

* ``GET /api/status``: sequential requests on one keep-alive connection;
* start → first event: ``POST /api/jobs/process/all/{id}`` sent, until a
  WebSocket client receives that batch's ``processing:started``. Each run
  processes one ``noop`` job and waits for its ``done``; between runs the
  script pauses so the engine's warm child is ready again, which is what a
  start costs on an engine that is not starting batches back to back.

Run with ``python -m bench.latency`` (``--help`` for the counts).
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from engine.testing import open_test_server
from protocols.frames import parse_ws_frame

__all__ = ["main"]


def _percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _report(name: str, seconds: Sequence[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{name}: n={len(ms)} p50={_percentile(ms, 50):.2f} ms "
        f"p99={_percentile(ms, 99):.2f} ms max={max(ms):.2f} ms"
    )


async def _status_latency(client: httpx.AsyncClient, requests: int) -> list[float]:
    await client.get("/api/status")  # the connection is open before timing
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await client.get("/api/status")
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
    return samples


async def _until(ws: WebSocketConnection, name: str, batch_id: str) -> None:
    while True:
        event = parse_ws_frame(await ws.get_message())
        if event.event == name and event.data.batch_id == batch_id:
            return


async def _start_latency(
    client: httpx.AsyncClient, ws_url: str, runs: int, pause: float
) -> list[float]:
    samples = []
    async with open_websocket_url(ws_url) as ws:
        for run in range(runs):
            batch_id = f"latency-{run}"
            body = {"batchId": batch_id, "type": "noop", "jobs": [{}]}
            (await client.post("/api/batches", json=body)).raise_for_status()
            await ws.send_message(orjson.dumps({"subscribe": [batch_id]}).decode())
            await trio.sleep(pause)  # the subscription is in place, the warm child ready
            started = time.perf_counter()
            response = await client.post(f"/api/jobs/process/all/{batch_id}")
            await _until(ws, "processing:started", batch_id)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            await _until(ws, "done", batch_id)
    return samples


async def run(requests: int, runs: int, pause: float) -> list[str]:
    """Both measurements; one line of results each.

    Cancellation: may have partially happened; the server is shut down.
    """
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            open_test_server(Path(tmp), max_active_batches=1, warm_children=1) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            status = await _status_latency(client, requests)
            ws_url = url.replace("http://", "ws://", 1) + "/ws?batchId=none"
            starts = await _start_latency(client, ws_url, runs, pause)
    return [
        _report("GET /api/status", status),
        _report("process/all -> processing:started", starts),
    ]


def main() -> None:
    """``python -m bench.latency``."""
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--status-requests", type=int, default=200)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument(
        "--pause", type=float, default=0.5, help="seconds between runs (default 0.5)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("batchyard").setLevel(logging.ERROR)
    for line in trio.run(run, args.status_requests, args.starts, args.pause):
        print(line)


if __name__ == "__main__":
    main()
