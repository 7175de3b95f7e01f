"""W6 fan-out: N WebSocket subscribers on one batch (``w6_runs``).

The engine is served in this process (``open_test_server``) so that the
moment each event is published can be taken where it happens: the bench
gives that engine an observer (``Engine.observe_events``) that records
``time.monotonic()`` per seq as each event is published, and changes
nothing else. The subscribers run
in ``bench.workloads.fanout_client`` subprocesses (one per core), stamp each
frame's arrival with the same system-wide clock, and resume after a
slow-subscriber drop as a client should. From both sides:

* delivery latency of every frame received: arrival minus publication;
* frames lost: events of the batch that a subscriber never received, even
  after resuming (the replay ring may no longer hold them);
* subscribers dropped: subscribers the server closed at least once with
  1013 (too slow); ``drops`` counts every such close; a subscriber whose
  reconnection failed counts as failed, and what it missed as lost.

The batch is ``sleep`` jobs of ``w6_job_seconds`` at concurrency
``w6_concurrency``: work that takes time, as a dashboard would watch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from array import array
from functools import partial
from pathlib import Path
from typing import Any

import trio

from bench.context import Context
from bench.live.client import open_api
from bench.live.server import REPO
from bench.model import Result
from bench.stats import percentile, quantiles
from engine.config.settings import RateLimit
from engine.core.engine import Engine
from engine.testing import open_test_server
from protocols.events import Event

__all__ = ["w6_fan_out"]

#: One client process per core: the server needs the rest.
_CLIENT_PROCESSES = 2


def _record_publications(engine: Engine, published: dict[int, tuple[float, str | None]]) -> None:
    def record(event: Event) -> None:
        published[event.seq] = (time.monotonic(), event.data.get("batchId"))

    engine.observe_events(record)


async def _wait_ready(process: trio.Process) -> None:
    assert process.stdout is not None
    seen = b""
    async for chunk in process.stdout:
        seen += chunk
        if b"READY" in seen:
            return
    raise RuntimeError("a fan-out client ended before its subscribers were open")


def _read_frames(path: Path) -> tuple[array[int], array[float]]:
    with path.open("rb") as file:
        header: array[int] = array("q")
        header.fromfile(file, 1)
        seqs: array[int] = array("q")
        seqs.fromfile(file, header[0])
        arrivals: array[float] = array("d")
        arrivals.fromfile(file, header[0])
    return seqs, arrivals


async def _clients(
    ctx: Context, ws_url: str, batch_id: str, subscribers: int, start: Any
) -> list[Path]:
    processes = min(_CLIENT_PROCESSES, subscribers)
    shares = [subscribers // processes + (i < subscribers % processes) for i in range(processes)]
    outputs = [ctx.workdir / f"w6-{subscribers}-{i}" for i in range(processes)]
    async with trio.open_nursery() as nursery:
        started = []
        for share, out in zip(shares, outputs, strict=True):
            command = [sys.executable, "-m", "bench.workloads.fanout_client", "--url", ws_url]
            command += ["--batch", batch_id, "--subscribers", str(share), "--out", str(out)]
            started.append(
                await nursery.start(
                    partial(trio.run_process, command, stdout=subprocess.PIPE, cwd=REPO)
                )
            )
        for process in started:
            await _wait_ready(process)
        await start()
    return outputs


def _metrics(
    outputs: list[Path],
    published: dict[int, tuple[float, str | None]],
    batch_id: str,
    subscribers: int,
) -> tuple[dict[str, float | int | None], list[float]]:
    expected = {seq for seq, (_, batch) in published.items() if batch == batch_id}
    latencies: list[float] = []
    received = dropped = drops = not_ended = broken = 0
    for out in outputs:
        seqs, arrivals = _read_frames(out.with_suffix(".bin"))
        for seq, arrived in zip(seqs, arrivals, strict=True):
            latencies.append((arrived - published[seq][0]) * 1000)
        received += len(seqs)
        for tally in json.loads(out.with_suffix(".json").read_text()):
            dropped += tally["drops"] > 0
            drops += tally["drops"]
            not_ended += not tally["ended"]
            broken += tally["error"] is not None
    times = sorted(published[seq][0] for seq in expected)
    metrics: dict[str, float | int | None] = {
        "subscribers": subscribers,
        "events": len(expected),
        "frames_expected": len(expected) * subscribers,
        "frames_received": received,
        "frames_lost": len(expected) * subscribers - received,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=None),
        "subscribers_dropped": dropped,
        "drops": drops,
        "subscribers_not_ended": not_ended,
        "subscribers_failed": broken,
        "batch_seconds": times[-1] - times[0] if times else None,
    }
    return metrics, latencies


async def _one(ctx: Context, subscribers: int, jobs: int) -> Result:
    sizes = ctx.sizes
    name = f"w6-{subscribers}"
    workdir = ctx.workdir / name
    workdir.mkdir(exist_ok=True)
    published: dict[int, tuple[float, str | None]] = {}
    server = open_test_server(
        workdir,
        store_url=ctx.store_url(name),
        concurrency=sizes.w6_concurrency,
        batch_size=sizes.w6_concurrency,
        rate_limit=RateLimit(count=0, per_seconds=60),
        job_modules=(),
    )
    async with server as (engine, url), open_api(url) as api:
        _record_publications(engine, published)
        payloads = [{"seconds": sizes.w6_job_seconds}] * jobs
        batch_id = await api.create_batch("sleep", payloads)
        await engine.wait_warm()
        ws_url = "ws" + url.removeprefix("http")
        outputs = await _clients(
            ctx, ws_url, batch_id, subscribers, partial(api.process_all, batch_id)
        )
    metrics, latencies = _metrics(outputs, published, batch_id, subscribers)
    metrics["jobs"] = jobs
    return Result(
        workload="W6",
        system=f"batchyard ({subscribers} subscribers)",
        config=(
            f"served in the bench process; {jobs} sleep jobs of "
            f"{sizes.w6_job_seconds * 1000:g} ms at concurrency {sizes.w6_concurrency}; "
            f"{subscribers} WebSocket clients in {min(_CLIENT_PROCESSES, subscribers)} processes, "
            f"subscriber buffer {engine.settings.subscriber_buffer} events"
        ),
        metrics=metrics,
        samples={"latency_quantiles_ms": quantiles(latencies)},
    )


async def w6_fan_out(ctx: Context) -> list[Result]:
    """W6 at each subscriber count of the sizes."""
    return [await _one(ctx, count, jobs) for count, jobs in ctx.sizes.w6_runs]
