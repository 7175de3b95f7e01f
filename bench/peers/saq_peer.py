"""SAQ: one asyncio worker process, ``concurrency`` jobs at once."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from bench.peers.base import Job

name = "saq"
modules = ("saq",)
shared_count = False
rate_limiter = None


def describe(concurrency: int) -> str:
    return f"saq --workers 1, concurrency={concurrency}, blocking dequeue"


def worker_command(redis_url: str, concurrency: int, rate: tuple[int, float] | None) -> list[str]:
    return [sys.executable, "-m", "saq", "bench.peers.saq_worker.settings", "--workers", "1", "-q"]


async def _enqueue(jobs: Sequence[Job]) -> None:
    from bench.peers.saq_worker import queue

    await queue.connect()
    try:
        for job in jobs:
            await queue.enqueue(
                "job",
                run=job.run,
                total=job.total,
                seconds=job.seconds,
                record_start=job.record_start,
                hold=job.hold,
                timeout=600,
                retries=1,
            )
    finally:
        await queue.disconnect()


def enqueue(redis_url: str, jobs: Sequence[Job], rated: bool) -> None:
    os.environ.setdefault("BENCH_REDIS_URL", redis_url)
    asyncio.run(_enqueue(jobs))
