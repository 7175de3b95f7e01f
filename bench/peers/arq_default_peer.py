"""arq at its default ``poll_delay`` of 0.5 s, on W1 only (capped)."""

from __future__ import annotations

from bench.peers.arq_peer import enqueue, modules, rate_limiter, shared_count
from bench.peers.arq_peer import worker_command as _tuned_command

__all__ = [
    "describe",
    "enqueue",
    "modules",
    "name",
    "rate_limiter",
    "shared_count",
    "worker_command",
]

name = "arq (default poll_delay)"


def describe(concurrency: int) -> str:
    return f"1 worker, max_jobs={concurrency}, poll_delay=0.5 (arq's default), results not kept"


def worker_command(redis_url: str, concurrency: int, rate: tuple[int, float] | None) -> list[str]:
    command = _tuned_command(redis_url, concurrency, rate)
    return [*command[:-1], command[-1].replace(".Tuned", ".Default")]
