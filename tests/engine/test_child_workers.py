"""How the child's workers take the jobs it holds, driven in-process on the
mock clock: in order as workers free, each round's results and next starts
in one write, a job's stop never reaching the job its worker runs next,
jobs within the concurrency taken on arrival, never more workers than the
concurrency."""

from __future__ import annotations

import collections
from typing import Any

import trio
import trio.testing

from engine.child.workers import Workers
from engine.jobs.registry import JobContext, JobRegistry
from protocols import ipc
from protocols.framing import NEED_DATA, LineFramer
from tests.engine.child_harness import (
    _interrupted,
    _job,
    _registry,
    _run,
    _start_child,
    _terminal,
)


def _facts_of_write(data: bytes) -> list[ipc.ChildMessage]:
    framer: LineFramer[ipc.ChildLine] = LineFramer(ipc.ChildLine)
    framer.receive_data(data)
    facts: list[ipc.ChildMessage] = []
    while (line := framer.next_message()) is not NEED_DATA:
        facts.extend(ipc.facts_of(line))
    assert not framer.buffered, "a write ended mid-line"
    return facts


async def test_jobs_queued_beyond_the_concurrency_start_in_order_as_workers_free(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seconds = [3, 1, 1, 1, 0.5, 1]
    started: list[tuple[str, float]] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin(concurrency=2)
            t0 = trio.current_time()
            await engine.send(
                _run(*(_job(f"j{n}", "nap", {"seconds": s}) for n, s in enumerate(seconds)))
            )
            while len(started) < len(seconds):
                message = await engine.receive()
                if isinstance(message, ipc.JobStarted):
                    started.append((message.job_id, trio.current_time() - t0))
            await engine.send(ipc.Shutdown())
            messages = await engine.rest()
    # j0 holds one worker for 3 s; the other runs j1, j2, j3 one after
    # another; at 3 s both are free for j4 and j5. (Jobs that start in the
    # same round may be reported in either order.)
    assert sorted(started, key=lambda start: (start[1], start[0])) == [
        ("j0", 0.0),
        ("j1", 0.0),
        ("j2", 1.0),
        ("j3", 2.0),
        ("j4", 3.0),
        ("j5", 3.0),
    ]
    assert messages[-1] == ipc.Done(completed=6, failed=0)


async def test_a_rounds_results_and_the_next_starts_leave_in_one_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    writes: list[bytes] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, writes=writes)
            await engine.begin(concurrency=4)
            already = len(writes)
            await engine.send(_run(*(_job(f"j{n}", "echo", n) for n in range(8))))
            await trio.sleep(1.0)
            rounds = [_facts_of_write(data) for data in writes[already:]]
            await engine.send(ipc.Shutdown())
            await engine.rest()
    kinds = [collections.Counter(type(m).__name__ for m in facts) for facts in rounds]
    assert kinds[:2] == [
        {"JobStarted": 4},
        {"JobCompleted": 4, "JobStarted": 4, "Progress": 1},
    ]
    completed = {m.job_id for m in rounds[1] if isinstance(m, ipc.JobCompleted)}
    started = {m.job_id for m in rounds[1] if isinstance(m, ipc.JobStarted)}
    assert (completed, started) == ({"j0", "j1", "j2", "j3"}, {"j4", "j5", "j6", "j7"})
    # The last results have no start to ride with: the outbox writes them
    # (the writer may take the first of them before the others came).
    assert 1 <= len(rounds[2:]) <= 2
    assert sum(kind["JobCompleted"] for kind in kinds[2:]) == 4
    assert all(isinstance(facts[-1], ipc.Progress) for facts in rounds[1:])


async def _stubborn(payload: Any, ctx: JobContext) -> Any:
    try:
        await trio.sleep(10)
    except trio.Cancelled:
        return "kept going"  # swallows its stop: the job completes
    return "slept"


def _with_stubborn() -> JobRegistry:
    registry = _registry()
    registry.register("stubborn", _stubborn)
    return registry


async def test_a_jobs_stop_never_reaches_the_next_job_of_its_worker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, _with_stubborn())
            await engine.begin(concurrency=1)
            await engine.send(
                _run(
                    _job("stopped", "nap", {"seconds": 10}),
                    _job("after-stopped", "echo", 1),
                    _job("stubborn", "stubborn"),
                    _job("after-stubborn", "echo", 2),
                )
            )
            await trio.sleep(1.0)
            await engine.send(ipc.CancelJob(job_id="stopped"))
            await trio.sleep(1.0)
            await engine.send(ipc.CancelJob(job_id="stubborn"))
            await trio.sleep(1.0)
            await engine.send(ipc.Shutdown())
            messages = await engine.rest()
    assert _interrupted(messages) == ["stopped"]
    assert _terminal(messages) == {
        "after-stopped": ipc.JobCompleted(job_id="after-stopped", result=1),
        "stubborn": ipc.JobCompleted(job_id="stubborn", result="kept going"),
        "after-stubborn": ipc.JobCompleted(job_id="after-stubborn", result=2),
    }


async def test_jobs_within_the_concurrency_are_taken_on_arrival(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A Shutdown read in the same burst as the jobs: those the concurrency
    # took at once are in flight and run; the one that queued goes back.
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin(concurrency=2)
            jobs = _run(*(_job(f"j{n}", "nap", {"seconds": 1}) for n in range(3)))
            await engine.send(jobs, ipc.Shutdown())
            messages = await engine.rest()
            assert await engine.wait() == 0
    assert _interrupted(messages) == ["j2"]
    assert sorted(_terminal(messages)) == ["j0", "j1"]
    assert messages[-1] == ipc.Done(completed=2, failed=0)


async def test_a_job_handed_while_a_stubborn_worker_hears_its_stop_starts_no_extra_worker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A job that swallowed its stop ends normally; its worker hears the stop
    # only at its next take, a round later. A job handed in that round must
    # wait for that worker, not start a second one. Trio may run the two in
    # either order within a round, so the race is run many times.
    most_workers = 0

    async def run(job: ipc.JobToRun, scope: trio.CancelScope) -> None:
        if job.job_id.startswith("stubborn"):
            scope.cancel()
            handed.set()

    async with trio.open_nursery() as nursery:
        workers = Workers(nursery, 1, run)
        for attempt in range(40):
            handed = trio.Event()
            workers.hand([_job(f"stubborn-{attempt}", "echo")])
            await handed.wait()
            workers.hand([_job(f"next-{attempt}", "echo")])
            most_workers = max(most_workers, len(nursery.child_tasks))
            await trio.testing.wait_all_tasks_blocked()
            most_workers = max(most_workers, len(nursery.child_tasks))
        assert workers.close() == []
    assert most_workers == 1
