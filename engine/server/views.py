"""Engine and store records as the API's response bodies.

The store speaks wall-clock floats; the API speaks timezone-aware datetimes.
Both speak ``JobState``. These functions are the only place that knows both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from engine.core.engine import EngineStatus, JobRequest
from engine.core.scheduler import ScheduleStatus
from engine.core.watch import ChildStats
from engine.store import BatchRecord, EngineRecord, JobRecord
from protocols import api
from protocols.api_schedules import ScheduleView
from protocols.job_api import ChildView

__all__ = [
    "batch_view",
    "child_view",
    "job_requests",
    "job_view",
    "json_response",
    "schedule_view",
    "status_view",
]


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """``body`` (a ``protocols.api`` class) as a JSON response."""
    return Response(
        api.encode_body(body), status_code=status, headers=headers, media_type="application/json"
    )


def batch_view(
    record: BatchRecord,
    *,
    runner: str | None,
    child: ChildStats | None = None,
    eta_seconds: float | None = None,
) -> api.BatchView:
    """A stored batch as ``GET /api/batches/{batchId}`` shows it; ``runner``
    is the engine that runs it (``Engine.runner_of``), ``child`` its child
    when it runs on this engine, ``eta_seconds`` its run's estimate
    (``Engine.eta_seconds``)."""
    counts = record.counts
    return api.BatchView(
        batch_id=record.batch_id,
        type=record.type,
        running=runner is not None,
        engine_id=runner,
        counts=api.Counts(
            pending=counts.pending,
            active=counts.active,
            completed=counts.completed,
            failed=counts.failed,
        ),
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        options=dict(record.options),
        child=None if child is None else child_view(child),
        eta_seconds=eta_seconds,
    )


def child_view(stats: ChildStats) -> ChildView:
    """A running batch's child as the batch view shows it."""
    return ChildView(
        pid=stats.pid,
        rss_bytes=stats.rss_bytes,
        cpu_seconds=stats.cpu_seconds,
        jobs_run=stats.jobs_run,
    )


def job_view(record: JobRecord) -> api.JobView:
    """A stored job as the job list and ``GET /api/jobs/{jobId}`` show it."""
    return api.JobView(
        job_id=record.job_id,
        batch_id=record.batch_id,
        type=record.type,
        state=record.state,
        payload=record.payload,
        attempts=record.attempts,
        key=record.key,
        priority=record.priority,
        cost=record.cost,
        progress=record.progress,
        result=record.result,
        error=record.error,
        created_at=_utc(record.created_at),
        started_at=_utc(record.started_at),
        finished_at=_utc(record.finished_at),
    )


def _utc(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def status_view(status: EngineStatus, engines: Sequence[EngineRecord]) -> api.StatusView:
    """The engine's snapshot and the cluster's live engines as
    ``GET /api/status`` shows them."""
    return api.StatusView(
        running_batches=status.running_batches,
        active_batches=status.active_batches,
        max_batches=status.max_batches,
        is_shutting_down=status.is_shutting_down,
        paused=status.paused,
        engine_id=status.engine_id,
        engines=tuple(
            api.EngineView(
                engine_id=record.engine_id,
                host=record.host,
                pid=record.pid,
                running_batches=record.running_batches,
                max_batches=record.max_batches,
                last_seen=datetime.fromtimestamp(record.last_seen, UTC),
            )
            for record in engines
        ),
    )


def job_requests(specs: Sequence[api.JobSpec]) -> list[JobRequest]:
    """Decoded job specs as the engine takes them."""
    return [
        JobRequest(
            payload=spec.payload,
            type=spec.type,
            key=spec.key,
            priority=spec.priority,
            delay_seconds=spec.delay_seconds,
            cost=spec.cost,
            timeout_seconds=spec.timeout_seconds,
        )
        for spec in specs
    ]


def schedule_view(status: ScheduleStatus) -> ScheduleView:
    """One schedule as ``GET /api/schedules`` lists it."""
    return ScheduleView(
        name=status.name,
        cron=status.cron,
        type=status.type,
        next_run_at=_utc(status.next_run_at),
        last_run_at=_utc(status.last_run_at),
    )
