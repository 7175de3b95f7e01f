"""The SAQ queue and worker settings (``saq bench.peers.saq_worker.settings``)."""

from __future__ import annotations

import os
from typing import Any

from saq import Queue

from bench.peers import signals

queue = Queue.from_url(
    os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"), name="bench"
)


async def job(
    ctx: dict[str, Any], *, run: str, total: int, seconds: float, record_start: bool, hold: bool
) -> None:
    await signals.ajob(run, total, seconds, record_start, hold)


settings = {
    "queue": queue,
    "functions": [job],
    "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "16")),
}
