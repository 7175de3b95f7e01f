"""What the server's metrics count from a burst of events."""

from __future__ import annotations

import pytest
from trio.testing import MockClock

from engine.server.metrics import ServerMetrics
from protocols.events import (
    Event,
    JobRetrying,
    JobUpdate,
    ProcessingProgress,
    RateLimitedJob,
    RunError,
    stamp,
)
from protocols.lifecycle import JobState
from tests.conftest import FakeEngineOpener


def _burst() -> list[Event]:
    data = [
        JobUpdate(batch_id="b", job_id="1", status=JobState.ACTIVE, progress=0.0),
        JobUpdate(batch_id="b", job_id="1", status=JobState.COMPLETED, type="t", duration_ms=20),
        JobUpdate(batch_id="b", job_id="2", status=JobState.COMPLETED, type="t", duration_ms=3000),
        JobUpdate(batch_id="b", job_id="3", status=JobState.COMPLETED, type="t"),
        JobUpdate(batch_id="b", job_id="4", status=JobState.FAILED, error="e", duration_ms=1),
        JobRetrying(batch_id="b", job_id="5", error="e", retry_at=None, type="u", attempt=1),
        RateLimitedJob(batch_id="b", job_id="6", type="u", retry_after=1.0, resume_at=2.0),
        RunError(batch_id="b", error="crashed", restarting=True),
        RunError(batch_id="b", error="gave up"),
        ProcessingProgress(batch_id="b", completed=3, failed=1, total=9),
    ]
    return [stamp(seq, item) for seq, item in enumerate(data, start=1)]


async def test_a_burst_is_counted_by_labels(
    fake_engine: FakeEngineOpener, autojump_clock: MockClock
) -> None:
    async with fake_engine() as engine:
        metrics = ServerMetrics(engine)
        metrics.observe(_burst())
        metrics.observe(_burst()[1:2])

        def sample(name: str, **labels: str) -> float | None:
            return metrics.registry.get_sample_value(name, labels)

        finished = "batchyard_jobs_finished_total"
        assert sample(finished, type="t", state="completed") == 4
        assert sample(finished, type="unknown", state="failed") == 1
        assert sample(finished, type="t", state="active") is None
        durations = "batchyard_job_duration_seconds"
        assert sample(f"{durations}_count", type="t", state="completed") == 3
        assert sample(f"{durations}_sum", type="t", state="completed") == pytest.approx(3.04)
        assert sample(f"{durations}_bucket", type="t", state="completed", le="0.025") == 2
        assert sample(f"{durations}_count", type="unknown", state="failed") == 1
        assert sample("batchyard_job_retries_total", type="u") == 1
        assert sample("batchyard_jobs_rate_limited_total", type="u") == 1
        assert sample("batchyard_child_restarts_total") == 1
