# mypy: disable-error-code="import-untyped,untyped-decorator,no-untyped-call"
"""The Celery app the bench's Celery worker runs (``celery -A bench.peers.celery_app``).

Results are ignored (no result backend round trip), and the rated task
carries Celery's ``rate_limit``, which is per worker and per task type and
only has the forms N/s, N/m and N/h: "20 per 2 s" cannot be written, so it
is ``10/s``, its average.
"""

from __future__ import annotations

import os

from celery import Celery

from bench.peers import signals

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue="bench",
    # Each thread may hold 64 messages: with Redis, a worker that reaches its
    # prefetch limit waits for its next poll, so the default of 4 stalls
    # short tasks (about 20 jobs/s here); 64 is what Celery's docs suggest
    # for many short tasks.
    worker_prefetch_multiplier=64,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.job")
def job(run: str, total: int, seconds: float, record_start: bool, hold: bool) -> None:
    signals.job(run, total, seconds, record_start, hold)


def _rate() -> str:
    limit = float(os.environ.get("BENCH_RATE_LIMIT", "20"))
    window = float(os.environ.get("BENCH_RATE_WINDOW", "2"))
    return f"{limit / window:g}/s"


@app.task(name="bench.rated", rate_limit=_rate())
def rated(run: str, total: int, seconds: float, record_start: bool, hold: bool) -> None:
    signals.job(run, total, seconds, record_start, hold)
