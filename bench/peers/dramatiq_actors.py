# mypy: disable-error-code="import-untyped,untyped-decorator,no-untyped-call"
"""The Dramatiq actors the bench's Dramatiq worker runs.

Dramatiq's rate limiters are used inside an actor. The rated actor takes a
``WindowRateLimiter`` slot (a sliding window kept in Redis) and, when none
is free, tries again 10 ms later in the same thread: the limiter's best
case. Raising ``RateLimitExceeded`` into Dramatiq's retry middleware, the
documented default, would add exponential backoff on top.
"""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from bench.peers import signals

_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
broker = RedisBroker(url=_URL)
dramatiq.set_broker(broker)

_limiter = WindowRateLimiter(
    RedisBackend(url=_URL),
    "bench-window",
    limit=int(os.environ.get("BENCH_RATE_LIMIT", "20")),
    window=int(float(os.environ.get("BENCH_RATE_WINDOW", "2"))),
)


@dramatiq.actor(queue_name="bench", max_retries=0)
def job(run: str, total: int, seconds: float, record_start: bool, hold: bool) -> None:
    signals.job(run, total, seconds, record_start, hold)


@dramatiq.actor(queue_name="bench", max_retries=0)
def rated(run: str, total: int, seconds: float, record_start: bool, hold: bool) -> None:
    while True:
        with _limiter.acquire(raise_on_failure=False) as acquired:
            if acquired:
                signals.job(run, total, seconds, record_start, hold)
                return
        time.sleep(0.01)
