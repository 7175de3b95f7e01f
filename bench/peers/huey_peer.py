"""Huey: one consumer with a thread per concurrency slot, blocking dequeue."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from bench.peers.base import Job

name = "huey"
modules = ("huey", "redis")
shared_count = False
rate_limiter = None


def describe(concurrency: int) -> str:
    return f"huey_consumer -k thread -w {concurrency}, RedisHuey(blocking=True), no results"


def worker_command(redis_url: str, concurrency: int, rate: tuple[int, float] | None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "huey.bin.huey_consumer",
        "bench.peers.huey_tasks.huey",
        "-k",
        "thread",
        "-w",
        str(concurrency),
        "-q",
        "-n",
        "-C",
    ]


def enqueue(redis_url: str, jobs: Sequence[Job], rated: bool) -> None:
    os.environ.setdefault("BENCH_REDIS_URL", redis_url)
    from bench.peers import huey_tasks

    for job in jobs:
        huey_tasks.job(*job.args())
