"""The child program, driven in-process over memory streams with the engine's
framing, on the mock clock. The real ``python -m engine.child`` is run in
``tests/e2e/test_child_process.py``."""

from __future__ import annotations

import os

import trio
import trio.testing

from protocols import ipc
from protocols.framing import LineFramer
from tests.engine.child_harness import (
    _Gauge,
    _interrupted,
    _job,
    _nothing_arrives,
    _registry,
    _run,
    _start_child,
    _story,
    _terminal,
)

# --- start-up -----------------------------------------------------------------


async def test_ready_comes_first_and_begin_is_answered_with_batch_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            assert await engine.receive() == ipc.Ready(pid=os.getpid())
            assert await _nothing_arrives(engine)
            await engine.send(ipc.Begin(batch_id="b7", concurrency=2))
            assert await engine.receive() == ipc.BatchStarted(batch_id="b7")
            await engine.send(ipc.Shutdown())
            assert await engine.rest() == [ipc.Done(completed=0, failed=0)]
            assert await engine.wait() == 0


async def test_shutdown_before_begin_exits_zero_without_starting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.send(ipc.Shutdown())
            assert await engine.rest() == [ipc.Ready(pid=os.getpid())]
            assert await engine.wait() == 0


# --- running jobs -------------------------------------------------------------


async def test_run_jobs_reports_active_then_completed_with_the_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin(batch_id="b2")
            await engine.send(
                _run(
                    _job("j1", "echo", {"text": "hi", "n": [1, 2]}), _job("j2", "steps", attempt=3)
                )
            )
            await engine.send(ipc.Shutdown())
            messages = await engine.rest()
            assert await engine.wait() == 0
    assert _story(messages, "j1") == ["JobStarted", "JobCompleted"]
    assert _story(messages, "j2") == [
        "JobStarted",
        "progress 0.0",
        "progress 50.0",
        "progress 100.0",
        "JobCompleted",
    ]
    done = _terminal(messages)
    assert done["j1"] == ipc.JobCompleted(job_id="j1", result={"text": "hi", "n": [1, 2]})
    assert done["j2"] == ipc.JobCompleted(
        job_id="j2", result={"attempt": 3, "batch": "b2", "job": "j2"}
    )
    assert messages[-1] == ipc.Done(completed=2, failed=0)


async def test_a_sync_handler_runs_in_a_thread_and_reports_progress_from_it() -> None:
    # Real clock: a mock clock would jump to the deadline while the handler's
    # thread works, since every task then waits.
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin()
            await engine.send(_run(_job("j1", "double", 21)), ipc.Shutdown())
            messages = await engine.rest()
            assert await engine.wait() == 0
    assert _story(messages, "j1") == ["JobStarted", "progress 50.0", "JobCompleted"]
    assert _terminal(messages)["j1"] == ipc.JobCompleted(
        job_id="j1", result={"doubled": 42, "in_thread": True}
    )
    assert messages[-1] == ipc.Done(completed=1, failed=0)


async def test_a_handler_exception_fails_that_job_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin()
            await engine.send(
                _run(
                    _job("ok1", "nap", {"seconds": 2}),
                    _job("bad", "boom", 7),
                    _job("ok2", "echo", "fine"),
                    _job("unknown", "no-such-type"),
                ),
                ipc.Shutdown(),
            )
            messages = await engine.rest()
            assert await engine.wait() == 0
    done = _terminal(messages)
    assert done["ok1"] == ipc.JobCompleted(job_id="ok1", result=2)
    assert done["ok2"] == ipc.JobCompleted(job_id="ok2", result="fine")
    bad, unknown = done["bad"], done["unknown"]
    assert isinstance(bad, ipc.JobFailed) and isinstance(unknown, ipc.JobFailed)
    assert bad.error == "ValueError: kaput 7"
    assert bad.traceback is not None
    assert "in _boom" in bad.traceback
    assert bad.traceback.rstrip().endswith("ValueError: kaput 7")
    assert "no-such-type" in unknown.error
    assert messages[-1] == ipc.Done(completed=2, failed=2)


async def test_a_result_json_cannot_carry_fails_the_job_clearly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin()
            await engine.send(_run(_job("odd", "opaque"), _job("ok", "echo", 1)), ipc.Shutdown())
            messages = await engine.rest()
            assert await engine.wait() == 0
    assert _story(messages, "odd") == ["JobStarted", "JobFailed"]
    odd = _terminal(messages)["odd"]
    assert isinstance(odd, ipc.JobFailed)
    assert odd.error.startswith("TypeError: result is not JSON")
    assert odd.traceback is not None and "not JSON" in odd.traceback
    assert isinstance(_terminal(messages)["ok"], ipc.JobCompleted)
    assert messages[-1] == ipc.Done(completed=1, failed=1)


async def test_the_concurrency_of_begin_is_reached_and_never_exceeded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gauge = _Gauge()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery, _registry(gauge))
            await engine.begin(concurrency=3)
            t0 = trio.current_time()
            await engine.send(_run(*(_job(f"j{i}", "gauge") for i in range(10))))
            # Queued jobs would be handed back by a shutdown: let all run first.
            await trio.sleep(4.0)
            await engine.send(ipc.Shutdown())
            messages = await engine.rest()
            assert await engine.wait() == 0
    assert gauge.peak == 3
    # Ten one-second jobs, three at a time: four rounds.
    assert trio.current_time() - t0 == 4.0
    running: set[str] = set()
    for message in messages:
        if isinstance(message, ipc.JobStarted):
            running.add(message.job_id)
        elif isinstance(message, ipc.JobCompleted | ipc.JobFailed):
            running.discard(message.job_id)
        assert len(running) <= 3
    assert messages[-1] == ipc.Done(completed=10, failed=0)


async def test_progress_follows_the_terminal_reports_it_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin(concurrency=2)
            jobs = [_job("a", "echo"), _job("b", "boom"), _job("c", "nap", {"seconds": 1})]
            jobs += [_job(f"n{i}", "nap", {"seconds": i}) for i in range(2, 6)]
            await engine.send(_run(*jobs))
            # Queued jobs would be handed back by a shutdown: let all run first.
            await trio.sleep(10.0)
            await engine.send(ipc.Shutdown())
            messages = await engine.rest()
            assert await engine.wait() == 0
    progress_at = [i for i, m in enumerate(messages) if isinstance(m, ipc.Progress)]
    assert progress_at, messages
    for i in progress_at:
        before = messages[:i]
        report = messages[i]
        assert isinstance(report, ipc.Progress)
        finished = _terminal(before)
        assert finished, "a Progress before any job finished"
        completed = [m for m in finished.values() if isinstance(m, ipc.JobCompleted)]
        assert report.completed == len(completed)
        assert report.failed == len(finished) - len(completed)
        assert report.in_flight == len(jobs) - len(finished)
    last = messages[progress_at[-1]]
    assert last == ipc.Progress(in_flight=0, completed=6, failed=1)
    assert messages[-1] == ipc.Done(completed=6, failed=1)


# --- stopping -----------------------------------------------------------------


async def test_shutdown_lets_in_flight_jobs_finish_and_refuses_new_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin(concurrency=2)
            t0 = trio.current_time()
            # The third job queues for a slot: not in flight, so the shutdown
            # hands it back unstarted.
            await engine.send(
                _run(
                    _job("j1", "nap", {"seconds": 5}),
                    _job("j2", "nap", {"seconds": 5}),
                    _job("j3", "boom"),
                )
            )
            await trio.sleep(1.0)
            await engine.send(ipc.Shutdown())
            await engine.send(_run(_job("late1", "echo"), _job("late2", "echo")))
            refused = await engine.receive_until(ipc.JobInterrupted)
            refused += await engine.receive_until(ipc.JobInterrupted)
            refused += await engine.receive_until(ipc.JobInterrupted)
            assert trio.current_time() == t0 + 1.0
            messages = await engine.rest()
            assert await engine.wait() == 0
            assert trio.current_time() == t0 + 5.0
    assert sorted(_interrupted(refused)) == ["j3", "late1", "late2"]
    everything = refused + messages
    assert _terminal(everything) == {
        "j1": ipc.JobCompleted(job_id="j1", result=5),
        "j2": ipc.JobCompleted(job_id="j2", result=5),
    }
    assert _story(everything, "late1") == _story(everything, "late2") == []
    tallies = [m for m in everything if isinstance(m, ipc.Progress)]
    assert tallies[-1] == ipc.Progress(in_flight=0, completed=2, failed=0)
    assert messages[-1] == ipc.Done(completed=2, failed=0)


async def test_cancel_interrupts_in_flight_jobs_then_says_done(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin(concurrency=2)
            await engine.send(_run(_job("quick", "echo")))
            await engine.receive_until(ipc.Progress)
            t0 = trio.current_time()
            await engine.send(_run(*(_job(f"j{i}", "nap", {"seconds": 100}) for i in range(3))))
            await trio.sleep(1.0)
            await engine.send(ipc.Cancel())
            messages = await engine.rest()
            assert await engine.wait() == 0
            assert trio.current_time() == t0 + 1.0
    assert _interrupted(messages) == ["j0", "j1", "j2"]
    assert _terminal(messages) == {}
    assert messages[-1] == ipc.Done(completed=1, failed=0)


async def test_cancel_during_a_shutdown_drain_interrupts_what_is_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin(concurrency=2)
            t0 = trio.current_time()
            await engine.send(
                _run(_job("short", "nap", {"seconds": 2}), _job("long", "nap", {"seconds": 50}))
            )
            await engine.send(ipc.Shutdown())
            await trio.sleep(3.0)
            await engine.send(ipc.Cancel())
            messages = await engine.rest()
            assert await engine.wait() == 0
            assert trio.current_time() == t0 + 3.0
    assert isinstance(_terminal(messages)["short"], ipc.JobCompleted)
    assert _interrupted(messages) == ["long"]
    assert messages[-1] == ipc.Done(completed=1, failed=0)


async def test_eof_from_the_engine_ends_the_child_at_once_with_code_3(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin()
            await engine.send(_run(_job("j1", "nap", {"seconds": 100})))
            started = await engine.receive()
            assert isinstance(started, ipc.JobStarted) and started.job_id == "j1"
            t0 = trio.current_time()
            await engine.close()
            messages = await engine.rest()
            assert await engine.wait() == 3
            assert trio.current_time() == t0
    assert messages == [ipc.JobInterrupted(job_id="j1")]


async def test_eof_during_a_shutdown_drain_also_ends_the_child_with_code_3(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin()
            await engine.send(_run(_job("j1", "nap", {"seconds": 100})), ipc.Shutdown())
            await trio.sleep(1.0)
            t0 = trio.current_time()
            await engine.close()
            messages = await engine.rest()
            assert await engine.wait() == 3
            assert trio.current_time() == t0
    assert _interrupted(messages) == ["j1"]
    assert not any(isinstance(m, ipc.Done) for m in messages)


# --- malformed IPC ------------------------------------------------------------


async def _assert_refused(lines: list[bytes], *, begin: bool) -> list[ipc.ChildMessage]:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            if begin:
                await engine.begin()
            for line in lines:
                await engine.send_raw(line)
            messages = await engine.rest()
            assert await engine.wait() == 4
    return messages


async def test_a_malformed_first_line_returns_4(autojump_clock: trio.testing.MockClock) -> None:
    messages = await _assert_refused([b"this is not json\n"], begin=False)
    assert messages == [ipc.Ready(pid=os.getpid())]


async def test_run_jobs_before_begin_returns_4(autojump_clock: trio.testing.MockClock) -> None:
    line = LineFramer(ipc.ParentMessage).encode(_run(_job("j1", "echo")))
    messages = await _assert_refused([line], begin=False)
    assert messages == [ipc.Ready(pid=os.getpid())]


async def test_a_malformed_line_mid_batch_returns_4(
    autojump_clock: trio.testing.MockClock,
) -> None:
    start = LineFramer(ipc.ParentMessage).encode(_run(_job("j1", "nap", {"seconds": 100})))
    messages = await _assert_refused([start, b'{"type": "run-jobs", "jobs": 3}\n'], begin=True)
    assert _interrupted(messages) == ["j1"]
    assert not any(isinstance(m, ipc.Done) for m in messages)


async def test_a_second_begin_returns_4(autojump_clock: trio.testing.MockClock) -> None:
    line = LineFramer(ipc.ParentMessage).encode(ipc.Begin(batch_id="again", concurrency=1))
    await _assert_refused([line], begin=True)


async def test_progress_goes_with_every_burst_that_finished_jobs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Finished jobs whose lines leave with the next job's start still bring
    # their Progress: counts move during the run, not only at its end.
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            engine = _start_child(nursery)
            await engine.begin(concurrency=2)
            await engine.send(_run(*(_job(f"j{n}", "nap", {"seconds": 1}) for n in range(6))))
            await trio.sleep(10)
            await engine.send(ipc.Shutdown())
            messages = await engine.rest()
            assert await engine.wait() == 0
    progress = [m.completed for m in messages if isinstance(m, ipc.Progress)]
    assert progress == [2, 4, 6]
