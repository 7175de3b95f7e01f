"""The batch's rate limit where the child starts handlers, in the child
program driven in-process on the mock clock: jobs queued in the child
(prefetched) start within the window of cost, the starts an earlier child
made count, a shutdown hands back what waits at the window, and a
``RateLimited`` hold that begins meanwhile is waited out too. The child's
wall clock is ``trio_wall_clock``, so ``JobStarted.started_at`` is exact.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from engine.errors import RateLimited
from engine.jobs.registry import JobContext, JobRegistry
from engine.testing.fake_child import trio_wall_clock
from protocols import ipc
from tests.engine.child_harness import _interrupted, _job, _registry, _run, _start_child
from tests.engine.windows import busiest_cost


def _started(messages: list[ipc.ChildMessage]) -> dict[str, float]:
    return {m.job_id: m.started_at for m in messages if isinstance(m, ipc.JobStarted)}


async def _raise_429(payload: Any, ctx: JobContext) -> Any:
    raise RateLimited(retry_after=payload)


async def _raise_429_after_a_second(payload: Any, ctx: JobContext) -> Any:
    await trio.sleep(1.0)
    raise RateLimited(retry_after=payload)


def _with_429() -> JobRegistry:
    registry = _registry()
    registry.register("raise-429", _raise_429)
    registry.register("raise-429-later", _raise_429_after_a_second)
    return registry


async def test_queued_jobs_start_within_the_window_of_their_cost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t0 = trio_wall_clock()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, clock=trio_wall_clock)
            await engine.begin(concurrency=2, rate=ipc.StartRate(count=3, per_seconds=2.0))
            # Two slots, eight jobs: six wait for a slot, as prefetched ones do.
            jobs = [_job(f"j{i}", "echo", cost=2.0 if i % 3 == 0 else 1.0) for i in range(8)]
            await engine.send(_run(*jobs))
            seen = [m for _ in jobs for m in await engine.receive_until(ipc.JobCompleted)]
            await engine.send(ipc.Shutdown())
            await engine.rest()
    started = {job: at - t0 for job, at in _started(seen).items()}
    costs = {job.job_id: job.cost for job in jobs}
    assert sorted(started) == sorted(costs)
    # Whichever order the queued jobs take their slots in, no window of 2 s
    # holds more than 3 of cost, and a job that waited started the moment
    # room came (a start leaving the window, at a multiple of 2 s here).
    assert busiest_cost([(at, costs[job]) for job, at in started.items()], 2.0) <= 3
    assert {at % 2.0 for at in started.values()} == {0.0}
    assert sum(at == 0.0 for at in started.values()) >= 2


async def test_the_starts_an_earlier_child_made_count_against_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t0 = trio_wall_clock()
    # The run's previous child started cost 2 half a second ago and cost 1
    # just now, in a window of 3 per 2 s.
    recent = (
        ipc.RecentStart(started_at=t0 - 0.5, cost=2.0),
        ipc.RecentStart(started_at=t0, cost=1.0),
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, clock=trio_wall_clock)
            rate = ipc.StartRate(count=3, per_seconds=2.0, recent=recent)
            await engine.begin(concurrency=4, rate=rate)
            await engine.send(_run(_job("a", "echo", cost=2.0), _job("b", "echo")))
            seen = [m for _ in "ab" for m in await engine.receive_until(ipc.JobCompleted)]
            await engine.send(ipc.Shutdown())
            await engine.rest()
    # Either job finds room first when the handed start of cost 2 leaves
    # (1.5 s); the other then waits for the handed start of cost 1 (2 s).
    assert sorted(at - t0 for at in _started(seen).values()) == [1.5, 2.0]


async def test_a_shutdown_hands_back_the_jobs_waiting_at_the_window_unstarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, clock=trio_wall_clock)
            await engine.begin(concurrency=2, rate=ipc.StartRate(count=1, per_seconds=60.0))
            await engine.send(_run(_job("a", "nap", {"seconds": 5.0})))
            await engine.receive_until(ipc.JobStarted)
            await engine.send(_run(_job("b", "echo"), _job("c", "echo")))
            began = trio.current_time()
            await engine.send(ipc.Shutdown())
            rest = await engine.rest()
            code = await engine.wait()
            took = trio.current_time() - began
    # b took the free slot and waited at the window, c waited for a slot:
    # both go back at once; a, in flight, finishes.
    assert _interrupted(rest) == ["b", "c"]
    assert not _started(rest)
    assert ipc.JobCompleted(job_id="a", result=5.0) in rest
    assert (code, took) == (0, 5.0)


async def test_a_hold_that_begins_while_a_job_waits_at_the_window_is_waited_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    t0 = trio_wall_clock()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, _with_429(), clock=trio_wall_clock)
            await engine.begin(concurrency=3, rate=ipc.StartRate(count=2, per_seconds=10.0))
            # x and r fill the window at 0 s; a (cost 2) waits for it; at
            # 1 s r raises RateLimited(15): starts are held until 16 s.
            await engine.send(_run(_job("x", "echo"), _job("r", "raise-429-later", 15.0)))
            await engine.receive_until(ipc.JobCompleted)
            await engine.send(_run(_job("a", "echo", cost=2.0)))
            seen = await engine.receive_until(ipc.JobCompleted)
            await engine.send(ipc.Shutdown())
            await engine.rest()
    assert ipc.JobRateLimited(job_id="r", retry_after=15.0) in seen
    # The window had room for a at 10 s (x and r gone); the hold kept it to 16 s.
    assert {job: at - t0 for job, at in _started(seen).items()} == {"a": 16.0}
