"""The status line on trio's MockClock: one line every
``STATUS_LOG_SECONDS`` with this engine's runs and the jobs per state and
type; none when it is 0."""

from __future__ import annotations

import logging

import pytest
import trio

from engine.testing import jobs_of
from tests.conftest import FakeEngineOpener


def _status_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[float, str]]:
    return [
        (record.created, record.getMessage())
        for record in caplog.records
        if record.name == "batchyard.status"
    ]


async def test_a_status_line_every_period(
    fake_engine: FakeEngineOpener, autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="batchyard.status")
    with trio.fail_after(600):
        async with fake_engine(status_log_seconds=30, max_active_batches=2) as engine:
            await engine.create_batch("waiting", "echo", jobs_of("echo", [1, 2, 3]))
            await engine.create_batch("mixed", "sleep", jobs_of("sleep", [{"seconds": 100}]))
            await engine.create_batch("done", "echo", jobs_of("echo", [4]))
            await engine.start("done")
            await engine.wait_stopped("done")
            await engine.start("mixed")
            await trio.sleep(95 - trio.current_time())
            lines = [message for _, message in _status_lines(caplog)]
    assert len(lines) == 3, lines
    assert lines[-1] == (
        "status: running 1 of 2 (mixed); "
        "echo: pending 3, active 0, completed 1, failed 0; "
        "sleep: pending 0, active 1, completed 0, failed 0"
    )


async def test_no_status_line_when_off(
    fake_engine: FakeEngineOpener, autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="batchyard.status")
    with trio.fail_after(600):
        async with fake_engine(status_log_seconds=0):
            await trio.sleep(300)
    assert _status_lines(caplog) == []


async def test_an_empty_store_says_so(
    fake_engine: FakeEngineOpener, autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="batchyard.status")
    with trio.fail_after(600):
        async with fake_engine(status_log_seconds=10):
            await trio.sleep(15)
    assert [message for _, message in _status_lines(caplog)] == ["status: running 0 of 1; no jobs"]


async def test_jobs_count_under_their_own_type_not_their_batch_type(
    fake_engine: FakeEngineOpener, autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="batchyard.status")
    with trio.fail_after(600):
        async with fake_engine(
            status_log_seconds=30, max_active_batches=2, concurrency=4, job_max_attempts=1
        ) as engine:
            mixed = jobs_of("echo", [1, 2]) + jobs_of("fail", [{}])
            mixed += jobs_of("sleep", [{"seconds": 100}])
            await engine.create_batch("mixed", "echo", mixed)
            await engine.create_batch("waiting", "sleep", jobs_of("echo", [3]))
            await engine.start("mixed")
            await trio.sleep(35 - trio.current_time())
            lines = [message for _, message in _status_lines(caplog)]
            await engine.cancel("mixed")
    assert lines == [
        "status: running 1 of 2 (mixed); "
        "echo: pending 1, active 0, completed 2, failed 0; "
        "fail: pending 0, active 0, completed 0, failed 1; "
        "sleep: pending 0, active 1, completed 0, failed 0"
    ]
