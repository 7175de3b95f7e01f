"""Dramatiq: one worker process with a thread per concurrency slot."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from bench.peers.base import Job

name = "dramatiq"
modules = ("dramatiq", "redis")
shared_count = False
rate_limiter = "WindowRateLimiter(limit=20, window=2) in the actor, retried every 10 ms in place"


def describe(concurrency: int) -> str:
    return f"1 process x {concurrency} threads, Redis broker, no retries"


def worker_command(redis_url: str, concurrency: int, rate: tuple[int, float] | None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dramatiq",
        "bench.peers.dramatiq_actors",
        "--processes",
        "1",
        "--threads",
        str(concurrency),
        "--queues",
        "bench",
    ]


def enqueue(redis_url: str, jobs: Sequence[Job], rated: bool) -> None:
    os.environ.setdefault("BENCH_REDIS_URL", redis_url)
    from bench.peers import dramatiq_actors

    actor = dramatiq_actors.rated if rated else dramatiq_actors.job
    for job in jobs:
        actor.send(*job.args())
