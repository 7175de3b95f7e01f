"""One job's own stop inside the child (``CancelJob``, ``timeout_seconds``),
driven in-process on the mock clock with ``test_child``'s engine end."""

from __future__ import annotations

import threading
from typing import Any

import trio
import trio.testing

from engine.jobs.registry import JobContext, JobRegistry
from protocols import ipc
from tests.engine.child_harness import (
    _interrupted,
    _job,
    _registry,
    _run,
    _start_child,
    _terminal,
)


def _timed(job_id: str, type: str, payload: object, timeout: float) -> ipc.JobToRun:
    return ipc.JobToRun(
        job_id=job_id, type=type, payload=payload, attempt=1, timeout_seconds=timeout
    )


async def test_cancel_job_stops_that_job_alone(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin(concurrency=3)
            t0 = trio.current_time()
            await engine.send(
                _run(
                    *(_job(j, "nap", {"seconds": 10}) for j in ("a", "b")),
                    _job("q", "nap", {"seconds": 1}),
                )
            )
            await trio.sleep(2.0)
            await engine.send(ipc.CancelJob(job_id="a"), ipc.CancelJob(job_id="unknown"))
            first = await engine.receive_until(ipc.JobInterrupted)
            assert trio.current_time() == t0 + 2.0  # an async handler stops at once
            await engine.send(ipc.Shutdown())
            messages = first + await engine.rest()
            assert await engine.wait() == 0
            assert trio.current_time() == t0 + 10.0  # b ran to its end
    assert _interrupted(messages) == ["a"]
    assert sorted(_terminal(messages)) == ["b", "q"]
    assert messages[-1] == ipc.Done(completed=2, failed=0)


async def test_cancel_job_of_a_queued_job_returns_it_unstarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin(concurrency=1)
            await engine.send(
                _run(_job("running", "nap", {"seconds": 5}), _job("queued", "echo", 1))
            )
            await trio.sleep(1.0)
            await engine.send(ipc.CancelJob(job_id="queued"), ipc.Shutdown())
            messages = await engine.rest()
    started = [m.job_id for m in messages if isinstance(m, ipc.JobStarted)]
    assert started == ["running"]
    assert _interrupted(messages) == ["queued"]
    assert isinstance(_terminal(messages)["running"], ipc.JobCompleted)


async def test_a_job_past_its_timeout_fails_timed_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin(concurrency=2)
            t0 = trio.current_time()
            await engine.send(
                _run(
                    _timed("slow", "nap", {"seconds": 30}, 2.5),
                    _timed("fast", "nap", {"seconds": 1}, 2.5),
                )
            )
            failed = await engine.receive_until(ipc.JobFailed)
            assert trio.current_time() == t0 + 2.5
            await engine.send(ipc.Shutdown())
            messages = failed + await engine.rest()
    outcome = _terminal(messages)
    assert isinstance(outcome["fast"], ipc.JobCompleted)
    slow = outcome["slow"]
    assert isinstance(slow, ipc.JobFailed)
    assert slow.error == "timed out after 2.5s"
    assert messages[-1] == ipc.Done(completed=1, failed=1)


def _gated_registry(release: threading.Event) -> JobRegistry:
    registry = _registry()

    def gated(payload: Any, ctx: JobContext) -> str:
        release.wait(10)
        return "returned"

    registry.register("gated", gated)
    return registry


async def test_a_def_handlers_job_stops_when_its_thread_returns() -> None:
    # Real time: the handler's thread is what the child waits for.
    release = threading.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, _gated_registry(release))
            await engine.begin(concurrency=2)
            await engine.send(_run(_job("gated", "gated"), _job("quick", "nap", {"seconds": 0.3})))
            await engine.receive_until(ipc.JobStarted)
            await engine.send(ipc.CancelJob(job_id="gated"))
            # The thread still runs: the job is not reported, the other one finishes.
            seen = await engine.receive_until(ipc.JobCompleted)
            assert _terminal(seen) == {"quick": ipc.JobCompleted(job_id="quick", result=0.3)}
            assert _interrupted(seen) == []
            release.set()
            stopped = await engine.receive_until(ipc.JobInterrupted)
            await engine.send(ipc.Shutdown())
            messages = seen + stopped + await engine.rest()
    assert _interrupted(messages) == ["gated"]
    assert messages[-1] == ipc.Done(completed=1, failed=0)


async def test_cancel_of_the_whole_child_abandons_def_handlers() -> None:
    release = threading.Event()
    try:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                engine = _start_child(nursery, _gated_registry(release))
                await engine.begin(concurrency=1)
                await engine.send(_run(_job("gated", "gated")))
                await engine.receive_until(ipc.JobStarted)
                await engine.send(ipc.Cancel())
                messages = await engine.rest()
                assert await engine.wait() == 0
    finally:
        release.set()
    assert _interrupted(messages) == ["gated"]
    assert messages[-1] == ipc.Done(completed=0, failed=0)


async def test_a_def_handler_past_its_time_limit_fails_when_its_thread_returns() -> None:
    release = threading.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, _gated_registry(release))
            await engine.begin(concurrency=1)
            await engine.send(_run(_timed("gated", "gated", None, 0.2)))
            await engine.receive_until(ipc.JobStarted)
            await trio.sleep(0.5)  # past the limit; the thread still runs
            release.set()
            failed = await engine.receive_until(ipc.JobFailed)
            await engine.send(ipc.Shutdown())
            await engine.rest()
    (report,) = _terminal(failed).values()
    assert isinstance(report, ipc.JobFailed) and report.error == "timed out after 0.2s"
