"""arq worker settings (``arq bench.peers.arq_worker.Tuned`` or ``.Default``).

arq fetches jobs every ``poll_delay`` seconds; its default of 0.5 s caps a
worker near ``max_jobs / 0.5`` jobs/s and adds up to 0.5 s to a job's start.
``Tuned`` polls every 10 ms.
"""

from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings

from bench.peers import signals

QUEUE = "bench:arq"


async def job(
    ctx: dict[str, Any], run: str, total: int, seconds: float, record_start: bool, hold: bool
) -> None:
    await signals.ajob(run, total, seconds, record_start, hold)


_REDIS = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
_MAX_JOBS = int(os.environ.get("BENCH_CONCURRENCY", "16"))


# arq reads a settings class's own attributes only, not inherited ones, so
# the two classes repeat them.
class Default:
    functions = (job,)
    queue_name = QUEUE
    redis_settings = _REDIS
    max_jobs = _MAX_JOBS
    keep_result = 0
    job_timeout = 600


class Tuned:
    functions = (job,)
    queue_name = QUEUE
    redis_settings = _REDIS
    max_jobs = _MAX_JOBS
    keep_result = 0
    job_timeout = 600
    poll_delay = 0.01
