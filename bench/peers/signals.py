"""What a peer's bench job does, inside the peer's worker, so the bench can
see it: the same for every Python peer.

Design notes
------------
A bench job is ``job(run, total, seconds, record_start, hold)``:

* ``hold``: wait until the bench releases the run (``BLPOP`` on its release
  list). The bench first fills every concurrency slot of a fresh worker
  with held jobs, so that a measured run starts on a worker whose
  processes, threads and connections are all up, and whose queue is
  already full;
* ``record_start``: push the start time (``time.time()``; one clock for the
  whole machine) to the run's start list, for rate and latency runs;
* then sleep ``seconds`` (0 for a no-op), and count the job as finished.

Counting costs a locked increment in the worker process; only the run's
first start in each process and its last finish touch Redis, so a no-op job
costs the peer nothing but its own machinery. A peer whose concurrency is
several processes (RQ) sets ``BENCH_SHARED_COUNT=1`` and counts with one
``INCR`` per job instead, the cheapest count several processes can share.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

__all__ = [
    "DONE",
    "FIRST",
    "RELEASE",
    "STARTS",
    "ahold",
    "finished",
    "hold",
    "started",
]

DONE = "bench:done:{run}"
FIRST = "bench:first:{run}"
STARTS = "bench:starts:{run}"
RELEASE = "bench:release:{run}"
_COUNT = "bench:count:{run}"

#: A held job waits at most this long; the bench releases it within seconds.
_HOLD_TIMEOUT = 300

_lock = threading.Lock()
_finished: dict[str, int] = {}
_first_seen: set[str] = set()
# redis-py types a sync client's answers as "Awaitable | value"; they are values.
_client: Any = None


def _redis() -> Any:
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _client


def started(run: str, record_start: bool) -> None:
    """Note that a job of ``run`` starts now."""
    now = time.time()
    if run not in _first_seen:
        with _lock:
            first = run not in _first_seen
            _first_seen.add(run)
        if first:
            _redis().rpush(FIRST.format(run=run), now)
    if record_start:
        _redis().rpush(STARTS.format(run=run), now)


def finished(run: str, total: int) -> None:
    """Count a finished job of ``run``; the ``total``-th pushes the end time."""
    if os.environ.get("BENCH_SHARED_COUNT"):
        answer: Any = _redis().incr(_COUNT.format(run=run))
        count = int(answer)
    else:
        with _lock:
            count = _finished[run] = _finished.get(run, 0) + 1
    if count == total:
        _redis().rpush(DONE.format(run=run), time.time())


def hold(run: str) -> None:
    """Block until the bench releases ``run``."""
    _redis().blpop([RELEASE.format(run=run)], timeout=_HOLD_TIMEOUT)


async def ahold(run: str) -> None:
    """``hold`` for a peer whose jobs run in an asyncio loop."""
    from redis.asyncio import Redis

    client: Any = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    try:
        await client.blpop([RELEASE.format(run=run)], timeout=_HOLD_TIMEOUT)
    finally:
        await client.aclose()


def job(run: str, total: int, seconds: float, record_start: bool, hold_run: bool) -> None:
    """The bench job for a peer that runs jobs in threads or processes."""
    started(run, record_start)
    if hold_run:
        hold(run)
    elif seconds:
        time.sleep(seconds)
    finished(run, total)


async def ajob(run: str, total: int, seconds: float, record_start: bool, hold_run: bool) -> None:
    """The bench job for a peer that runs jobs in an asyncio loop."""
    started(run, record_start)
    if hold_run:
        await ahold(run)
    elif seconds:
        import asyncio

        await asyncio.sleep(seconds)
    finished(run, total)
