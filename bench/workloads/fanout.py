"""W6 fan-out: N WebSocket subscribers on one batch (``w6_runs``).

The engine is served in this process (``open_test_server``) so that the
moment each event is published can be taken where it happens: the bench
gives that engine an observer (``Engine.observe_events``) that records
``time.monotonic()`` per seq as each event is published, and changes
nothing else. The subscribers run in ``bench.workloads.fanout_client``
subprocesses (up to ``_SUBSCRIBERS_PER_PROCESS`` each), stamp each frame's
arrival with the same system-wide clock, and resume after a
slow-subscriber drop as a client should; they ask for ``?batch=1`` (each
message an array of the frames queued for them), as ``batchyard watch``
does. From both sides:

* delivery latency of every frame received: arrival minus publication;
* frames lost: events of the batch that a subscriber never received, even
  after resuming (the replay ring may no longer hold them);
* subscribers dropped: subscribers the server closed at least once with
  1013 (too slow); ``drops`` counts every such close; a subscriber whose
  reconnection failed counts as failed, and what it missed as lost.

The batch is ``sleep`` jobs of ``w6_job_seconds`` at concurrency
``w6_concurrency``: work that takes time, as a dashboard would watch.

CPU, from the moment every subscriber is open to the moment every client
process has seen the end (``bench.cpu``): the engine's (this process and
its children, less the client processes; the bench's own part here is one
HTTP call), per 1,000 jobs; and each client process's, as a share of one
core over that span. A client process near 100 % is the bench's
bottleneck, not the server's: its frames queue in its socket and arrive
late, or it is dropped as slow.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from array import array
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path

import attrs
import psutil  # type: ignore[import-untyped]
import trio

from bench.context import Context
from bench.cpu import per_thousand_jobs, process_cpu_seconds, tree_cpu_seconds
from bench.live.client import open_api
from bench.live.server import REPO
from bench.model import Result
from bench.stats import percentile, quantiles
from engine.config.settings import RateLimit
from engine.core.engine import Engine
from engine.testing import open_test_server
from protocols.events import Event

__all__ = ["w6_fan_out"]

#: Subscribers one client process holds at most.
_SUBSCRIBERS_PER_PROCESS = 250

#: A client process busier than this (share of one core) may be what
#: limits delivery; the result says so.
_BUSY_CLIENT_SHARE = 0.9


def _record_publications(engine: Engine, published: dict[int, tuple[float, str | None]]) -> None:
    def record(event: Event) -> None:
        published[event.seq] = (time.monotonic(), event.data.batch_id)

    engine.observe_events(record)


class _Client:
    """One client process, and what it has printed that was not yet read."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._unread = b""

    async def wait_for(self, word: bytes) -> None:
        """Wait until the client prints ``word``.

        Raises:
            RuntimeError: it ended first.
        """
        assert self.process.stdout is not None
        while word not in self._unread:
            chunk = await self.process.stdout.receive_some()
            if not chunk:
                raise RuntimeError(f"a fan-out client ended before it printed {word.decode()}")
            self._unread += chunk
        self._unread = self._unread.partition(word)[2]

    def cpu_seconds(self) -> float:
        """The CPU seconds this client process has used so far."""
        return process_cpu_seconds(psutil.Process(self.process.pid))

    async def let_exit(self) -> None:
        """Close its stdin, which it waits for after ``ENDED``."""
        assert self.process.stdin is not None
        await self.process.stdin.aclose()


@attrs.frozen(kw_only=True)
class _Cpu:
    """CPU seconds from all subscribers open to every client done."""

    engine_seconds: float
    client_seconds: tuple[float, ...]
    wall_seconds: float


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
    ctx: Context,
    ws_url: str,
    batch_id: str,
    subscribers: int,
    start: Callable[[], Awaitable[None]],
) -> tuple[list[Path], _Cpu]:
    processes = _client_processes(subscribers)
    shares = [subscribers // processes + (i < subscribers % processes) for i in range(processes)]
    outputs = [ctx.workdir / f"w6-{subscribers}-{i}" for i in range(processes)]
    async with trio.open_nursery() as nursery:
        clients = []
        for share, out in zip(shares, outputs, strict=True):
            command = [sys.executable, "-m", "bench.workloads.fanout_client", "--url", ws_url]
            command += ["--batch", batch_id, "--subscribers", str(share), "--out", str(out)]
            run = partial(
                trio.run_process, command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO
            )
            clients.append(_Client(await nursery.start(run)))
        for client in clients:
            await client.wait_for(b"READY")
        pids = [client.process.pid for client in clients]
        engine_before = tree_cpu_seconds(os.getpid(), exclude=pids)
        clients_before = [client.cpu_seconds() for client in clients]
        began = time.monotonic()
        await start()
        for client in clients:
            await client.wait_for(b"ENDED")
        cpu = _Cpu(
            engine_seconds=tree_cpu_seconds(os.getpid(), exclude=pids) - engine_before,
            client_seconds=tuple(
                client.cpu_seconds() - before
                for client, before in zip(clients, clients_before, strict=True)
            ),
            wall_seconds=time.monotonic() - began,
        )
        for client in clients:
            await client.let_exit()
    return outputs, cpu


def _client_processes(subscribers: int) -> int:
    return max(1, math.ceil(subscribers / _SUBSCRIBERS_PER_PROCESS))


def _cpu_metrics(cpu: _Cpu, jobs: int) -> dict[str, float | int | None]:
    return {
        "engine_cpu_seconds": cpu.engine_seconds,
        "engine_cpu_seconds_per_1000_jobs": per_thousand_jobs(cpu.engine_seconds, jobs),
        "client_processes": len(cpu.client_seconds),
        "client_cpu_seconds": sum(cpu.client_seconds),
        "busiest_client_cpu_share": max(cpu.client_seconds) / cpu.wall_seconds,
    }


def _busy_notes(metrics: Mapping[str, float | int | None]) -> tuple[str, ...]:
    share = metrics["busiest_client_cpu_share"]
    if share is None or share < _BUSY_CLIENT_SHARE:
        return ()
    return (
        f"{metrics['subscribers']:,} subscribers: a client process used {share:.0%} of a core; "
        "the clients, not the server, may be what limits delivery in this run",
    )


def _metrics(
    outputs: list[Path],
    published: dict[int, tuple[float, str | None]],
    batch_id: str,
    subscribers: int,
) -> tuple[dict[str, float | int | None], list[float]]:
    expected = {seq for seq, (_, batch) in published.items() if batch == batch_id}
    latencies: list[float] = []
    received = messages = dropped = drops = not_ended = broken = 0
    for out in outputs:
        seqs, arrivals = _read_frames(out.with_suffix(".bin"))
        for seq, arrived in zip(seqs, arrivals, strict=True):
            latencies.append((arrived - published[seq][0]) * 1000)
        received += len(seqs)
        for tally in json.loads(out.with_suffix(".json").read_text()):
            messages += tally["messages"]
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
        "messages_received": messages,
        "frames_per_message": received / messages if messages else None,
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
        outputs, cpu = await _clients(
            ctx, ws_url, batch_id, subscribers, partial(api.process_all, batch_id)
        )
    metrics, latencies = _metrics(outputs, published, batch_id, subscribers)
    metrics["jobs"] = jobs
    metrics |= _cpu_metrics(cpu, jobs)
    return Result(
        workload="W6",
        system=f"batchyard ({subscribers} subscribers)",
        config=(
            f"served in the bench process; {jobs} sleep jobs of "
            f"{sizes.w6_job_seconds * 1000:g} ms at concurrency {sizes.w6_concurrency}; "
            f"{subscribers} WebSocket clients (?batch=1) in "
            f"{_client_processes(subscribers)} processes, "
            f"subscriber buffer {engine.settings.subscriber_buffer} events"
        ),
        metrics=metrics,
        notes=_busy_notes(metrics),
        samples={"latency_quantiles_ms": quantiles(latencies)},
    )


async def w6_fan_out(ctx: Context) -> list[Result]:
    """W6 at each subscriber count of the sizes."""
    return [await _one(ctx, count, jobs) for count, jobs in ctx.sizes.w6_runs]
