"""Every workload and every peer the bench knows, in the order they run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import attrs

from bench.context import Context
from bench.model import Result
from bench.peers import (
    arq_default_peer,
    arq_peer,
    bullmq_peer,
    celery_peer,
    dramatiq_peer,
    huey_peer,
    rq_peer,
    saq_peer,
)
from bench.peers.base import PythonPeer, run_python_peer
from bench.workloads.fanout import w6_fan_out
from bench.workloads.memory import w7_memory
from bench.workloads.rate import w4_rate_accuracy
from bench.workloads.scale_out import w8_scale_out
from bench.workloads.shutdown import w5_shutdown_accuracy
from bench.workloads.start_latency import w3_start_latency
from bench.workloads.throughput import w1_overhead, w2_io_efficiency

__all__ = ["PEERS", "WORKLOADS", "Peer", "Workload"]


@attrs.frozen(kw_only=True)
class Workload:
    """One of batchyard's workloads."""

    key: str
    title: str
    run: Callable[[Context], Awaitable[list[Result]]]


@attrs.frozen(kw_only=True)
class Peer:
    """One peer, run on W1, W2, W4 and single-job latency."""

    name: str
    run: Callable[[Context], list[Result]]


WORKLOADS = (
    Workload(key="W1", title="overhead (no-op jobs/s)", run=w1_overhead),
    Workload(key="W2", title="I/O efficiency (sleep jobs)", run=w2_io_efficiency),
    Workload(key="W3", title="start latency", run=w3_start_latency),
    Workload(key="W4", title="rate accuracy", run=w4_rate_accuracy),
    Workload(key="W5", title="shutdown accuracy", run=w5_shutdown_accuracy),
    Workload(key="W6", title="fan-out", run=w6_fan_out),
    Workload(key="W7", title="memory", run=w7_memory),
    Workload(key="W8", title="scale-out (batchyard workers on Redis)", run=w8_scale_out),
)


def _python(peer: PythonPeer) -> Callable[[Context], list[Result]]:
    return partial(run_python_peer, peer=peer)


def _arq_default(ctx: Context) -> list[Result]:
    return run_python_peer(ctx, arq_default_peer, w1_jobs=ctx.sizes.arq_default_jobs, only_w1=True)


PEERS = (
    Peer(name=celery_peer.name, run=_python(celery_peer)),
    Peer(name=rq_peer.name, run=_python(rq_peer)),
    Peer(name=dramatiq_peer.name, run=_python(dramatiq_peer)),
    Peer(name=arq_peer.name, run=_python(arq_peer)),
    Peer(name=arq_default_peer.name, run=_arq_default),
    Peer(name=huey_peer.name, run=_python(huey_peer)),
    Peer(name=saq_peer.name, run=_python(saq_peer)),
    Peer(name=bullmq_peer.name, run=bullmq_peer.run),
)
