"""arq: one asyncio worker, ``max_jobs`` = concurrency, tuned ``poll_delay``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from bench.peers.base import Job

name = "arq"
modules = ("arq",)
shared_count = False
rate_limiter = None
settings_class = "Tuned"


def describe(concurrency: int) -> str:
    return f"1 worker, max_jobs={concurrency}, poll_delay=0.01 (default 0.5), results not kept"


def worker_command(redis_url: str, concurrency: int, rate: tuple[int, float] | None) -> list[str]:
    return [sys.executable, "-m", "arq", f"bench.peers.arq_worker.{settings_class}"]


async def _enqueue(redis_url: str, jobs: Sequence[Job]) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    from bench.peers.arq_worker import QUEUE

    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        for job in jobs:
            await pool.enqueue_job("job", *job.args(), _queue_name=QUEUE)
    finally:
        await pool.aclose()


def enqueue(redis_url: str, jobs: Sequence[Job], rated: bool) -> None:
    asyncio.run(_enqueue(redis_url, jobs))
