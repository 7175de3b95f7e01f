"""Celery: a thread pool in one worker process, results ignored."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from bench.peers.base import Job

name = "celery"
modules = ("celery", "redis")
shared_count = False
rate_limiter = "rate_limit='10/s' (Celery cannot express 20 per 2 s; 10/s is its average)"


def describe(concurrency: int) -> str:
    return (
        f"1 worker, --pool threads --concurrency {concurrency}, prefetch x64, "
        "results ignored, no gossip/mingle/heartbeat, Redis broker"
    )


def worker_command(redis_url: str, concurrency: int, rate: tuple[int, float] | None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.peers.celery_app",
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "-Q",
        "bench",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
    ]


def enqueue(redis_url: str, jobs: Sequence[Job], rated: bool) -> None:
    os.environ.setdefault("BENCH_REDIS_URL", redis_url)
    from bench.peers import celery_app

    task = celery_app.rated if rated else celery_app.job
    with celery_app.app.producer_or_acquire() as producer:
        for job in jobs:
            task.apply_async(args=job.args(), producer=producer)
