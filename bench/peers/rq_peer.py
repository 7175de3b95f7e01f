"""RQ: a pool of in-process (non-forking) workers, one per concurrency slot.

An RQ worker runs one job at a time, so concurrency is processes. The
default ``Worker`` forks a work horse per job; ``SimpleWorker`` runs the job
in the worker itself, which is RQ's fast configuration for short jobs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench.peers.base import Job

name = "rq"
modules = ("rq", "redis")
shared_count = True
rate_limiter = None


def describe(concurrency: int) -> str:
    return f"rq worker-pool -n {concurrency} of SimpleWorker (no fork per job), results TTL 0"


def worker_command(redis_url: str, concurrency: int, rate: tuple[int, float] | None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rq.cli",
        "worker-pool",
        "-n",
        str(concurrency),
        "-w",
        "rq.worker.SimpleWorker",
        "-u",
        redis_url,
        "-q",
        "bench",
    ]


def enqueue(redis_url: str, jobs: Sequence[Job], rated: bool) -> None:
    from redis import Redis
    from rq import Queue

    from bench.peers import rq_jobs

    queue = Queue("bench", connection=Redis.from_url(redis_url))
    for first in range(0, len(jobs), 1000):
        queue.enqueue_many(
            [
                Queue.prepare_data(rq_jobs.job, args=job.args(), result_ttl=0, timeout=600)
                for job in jobs[first : first + 1000]
            ]
        )
