"""W7 memory: RSS of a served engine idle and with ``w7_pending`` pending
jobs in its store, and the RSS of its children.

The engine is ``batchyard serve`` in a subprocess, so its RSS is the whole
served process (HTTP stack included) and nothing of the bench. The jobs are
added through the API in bodies of ``_CHUNK`` jobs, as a producer would;
each RSS is read after ``_SETTLE_SECONDS`` of quiet. Children: the warm
spare (idle, ready), and the child of a running batch while it runs.
The engine's CPU seconds (process and children) while the pending jobs are
added, per 1,000 jobs, are the cost of taking them in.
"""

from __future__ import annotations

import psutil  # type: ignore[import-untyped]
import trio

from bench.context import Context
from bench.cpu import per_thousand_jobs
from bench.live.client import open_api
from bench.live.server import LiveServer, open_server
from bench.model import Result

__all__ = ["w7_memory"]

_CHUNK = 5_000
_SETTLE_SECONDS = 1.0
_MIB = 1024 * 1024


def _children(server: LiveServer) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(server.process.pid).children()
        if "engine.child" in " ".join(child.cmdline())
    ]


def _rss_mib(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / _MIB


async def w7_memory(ctx: Context) -> list[Result]:
    """Engine RSS idle and with pending jobs; child RSS idle and running."""
    pending = ctx.sizes.w7_pending
    environment = ctx.server_env("w7", WARM_CHILDREN=1, EMBEDDING_CONCURRENCY=4)
    async with open_server(ctx.workdir, environment) as server, open_api(server.url) as api:
        engine = psutil.Process(server.process.pid)
        await trio.sleep(_SETTLE_SECONDS)
        idle = _rss_mib(engine)
        spares = _children(server)
        warm = [_rss_mib(child) for child in spares]
        payloads = [{"n": n} for n in range(pending)]
        cpu_before = server.cpu_seconds()
        batch_id = await api.create_batch("noop", payloads[:_CHUNK])
        for first in range(_CHUNK, pending, _CHUNK):
            await api.add_jobs(batch_id, payloads[first : first + _CHUNK])
        cpu_used = server.cpu_seconds() - cpu_before
        await trio.sleep(_SETTLE_SECONDS)
        loaded = _rss_mib(engine)
        # A batch takes the warm spare as its child: that process, now running.
        running_batch = await api.create_batch("sleep", [{"seconds": 2.0}] * 4)
        await api.process_all(running_batch)
        await trio.sleep(_SETTLE_SECONDS)
        spare_pids = {child.pid for child in spares}
        running = [_rss_mib(c) for c in _children(server) if c.pid in spare_pids]
    return [
        Result(
            workload="W7",
            system="batchyard",
            config=(
                f"batchyard serve (HTTP stack included), {ctx.store_name} store; "
                f"{pending:,} pending no-op jobs added in bodies of {_CHUNK:,}"
            ),
            metrics={
                "engine_idle_mib": idle,
                "engine_pending_mib": loaded,
                "pending_jobs": pending,
                "growth": loaded / idle - 1,
                "warm_child_mib": max(warm, default=None),
                "running_child_mib": max(running, default=None),
                "engine_cpu_seconds": cpu_used,
                "engine_cpu_seconds_per_1000_jobs": per_thousand_jobs(cpu_used, pending),
            },
        )
    ]
