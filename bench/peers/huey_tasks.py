# mypy: disable-error-code="import-untyped,untyped-decorator,no-untyped-call"
"""The Huey instance and task the bench's Huey consumer runs."""

from __future__ import annotations

import os

from huey import RedisHuey

from bench.peers import signals

huey = RedisHuey(
    "bench",
    url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
    results=False,
    blocking=True,
)


@huey.task()
def job(run: str, total: int, seconds: float, record_start: bool, hold: bool) -> None:
    signals.job(run, total, seconds, record_start, hold)
