"""What a handler does to the flow of work, in the child program driven
in-process on the mock clock: ``ctx.enqueue`` travels with the completion,
and ``RateLimited`` hands the job back and holds every start that has not
happened yet (which a shutdown hands back at once)."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from engine.errors import RateLimited
from engine.jobs.registry import JobContext, JobRegistry
from protocols import ipc
from tests.engine.child_harness import _job, _registry, _run, _start_child


async def _raise_429(payload: Any, ctx: JobContext) -> Any:
    raise RateLimited(retry_after=payload)


async def _fan_out(payload: Any, ctx: JobContext) -> Any:
    ctx.enqueue("echo", {"n": 2**70}, "other", priority=4)
    ctx.enqueue("echo", payload)
    return "split"


def _with_outcome_types() -> JobRegistry:
    registry = _registry()
    registry.register("raise-429", _raise_429)
    registry.register("fan-out", _fan_out)
    return registry


async def test_follow_ups_travel_with_the_completion(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, _with_outcome_types())
            await engine.begin()
            await engine.send(_run(_job("j1", "fan-out", [1])))
            seen = await engine.receive_until(ipc.JobCompleted)
            await engine.send(ipc.Shutdown())
            await engine.rest()
    assert seen[-1] == ipc.JobCompleted(
        job_id="j1",
        result="split",
        follow_ups=(
            ipc.FollowUp(batch_id="other", type="echo", payload={"n": 2**70}, priority=4),
            ipc.FollowUp(type="echo", payload=[1]),
        ),
    )


async def test_rate_limited_hands_the_job_back_and_holds_the_other_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, _with_outcome_types())
            await engine.begin(concurrency=1)
            await engine.send(_run(_job("r", "raise-429", 3.0), _job("a", "echo", 1)))
            raised = await engine.receive_until(ipc.JobRateLimited)
            raised_at = trio.current_time()
            started = await engine.receive_until(ipc.JobStarted)
            started_at = trio.current_time()
            await engine.send(ipc.Shutdown())
            rest = await engine.rest()
    assert raised[-1] == ipc.JobRateLimited(job_id="r", retry_after=3.0)
    assert not any(isinstance(m, ipc.JobFailed) for m in raised)
    assert started[-1].job_id == "a" and started_at - raised_at == 3.0
    assert ipc.JobCompleted(job_id="a", result=1) in rest


async def test_a_shutdown_during_a_hold_hands_back_what_has_not_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, _with_outcome_types())
            await engine.begin(concurrency=1)
            jobs = _run(_job("r", "raise-429", 100.0), _job("a", "echo"), _job("b", "echo"))
            await engine.send(jobs)
            await engine.receive_until(ipc.JobRateLimited)
            began = trio.current_time()
            await engine.send(ipc.Shutdown())
            rest = await engine.rest()
            code = await engine.wait()
            took = trio.current_time() - began
    interrupted = sorted(m.job_id for m in rest if isinstance(m, ipc.JobInterrupted))
    assert (interrupted, code, took) == (["a", "b"], 0, 0.0)
    assert not any(isinstance(m, ipc.JobStarted) for m in rest)
