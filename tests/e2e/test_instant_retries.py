"""Retries due at once (``JOB_BACKOFF_SECONDS=0``) end to end: real
children on SQLite and Redis, real time with generous bounds.

A failed job with attempts left is pending and due the moment its failure
is recorded, so its own run may claim it back in the very store step that
records the failure, or in a claim of its own before the recorder has let
go of the failed attempt. Either way every job must end completed, none
left active, and every attempt counted once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import trio

from engine.testing import collect_until, jobs_of, open_test_engine
from protocols.lifecycle import JobState

JOBS = 24
FAIL_TIMES = 2


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'batchyard.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.mark.parametrize("batch_size", [1, 4])
async def test_retries_due_at_once_all_end_completed(
    tmp_path: Path, store_url: str, batch_size: int
) -> None:
    async with open_test_engine(
        tmp_path,
        store_url=store_url,
        concurrency=4,
        batch_size=batch_size,
        job_max_attempts=FAIL_TIMES + 1,
        job_backoff_seconds=0,
    ) as engine:
        payloads = [{"failTimes": FAIL_TIMES, "n": i} for i in range(JOBS)]
        batch_id, _ = await engine.create_batch(None, "flaky", jobs_of("flaky", payloads))
        with trio.fail_after(60), engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            seen = await collect_until(sub)
        counts = await engine.counts(batch_id)
        page = await engine.list_jobs(batch_id, limit=JOBS)
    assert (counts.pending, counts.active, counts.completed, counts.failed) == (0, 0, JOBS, 0)
    assert all(job.state is JobState.COMPLETED for job in page.jobs)
    assert [job.attempts for job in page.jobs] == [FAIL_TIMES + 1] * JOBS
    retrying = Counter(e.data.job_id for e in seen if e.event == "job:retrying")
    assert sorted(retrying.values()) == [FAIL_TIMES] * JOBS
    finished = [e for e in seen if e.event == "job:progress" and e.data.finished]
    assert Counter(e.data.job_id for e in finished) == Counter({j.job_id: 1 for j in page.jobs})
    assert seen[-1].event == "done"
    assert (seen[-1].data.completed, seen[-1].data.failed) == (JOBS, 0)
