"""``bench.stacks``: py-spy's raw stacks sorted into areas, and each process's
CPU shared among them per job. The lines are written here in py-spy's raw
format (outermost frame first, the sample count last)."""

from __future__ import annotations

import pytest

from bench.stacks import OTHER, areas_per_job, parse_raw, render

_ENGINE = [
    # the event loop waiting: idle
    "run (trio/_core/_run.py:1);EpollIOManager.get_events (trio/_core/_io_epoll.py:2) 50",
    # the store thread waiting for work: idle
    "Thread.run (threading.py:3);WorkerThread._work (trio/_core/_thread_cache.py:4) 30",
    # a transaction on the store thread
    "WorkerThread._work (trio/_core/_thread_cache.py:4);WorkerThread._handle_job "
    "(trio/_core/_thread_cache.py:5);SqliteStore._transact (engine/store/sqlite.py:6) 40",
    # a WebSocket send reached from the engine's bus is fan-out, not the bus
    "EventBus.publish (engine/core/bus.py:7);_pump_ws (engine/server/streams.py:8);"
    "send_all (trio/_highlevel_socket.py:9) 20",
    "Dispatcher._send (engine/core/dispatcher.py:10);ChildChannel.send "
    "(engine/supervisor/channel.py:11) 30",
    "unrolled_run (trio/_core/_run.py:12) 10",
    # a store step in the event loop's thread, reached from the recorder
    "Recorder.record (engine/core/recorder.py:13);SqliteStore._run (engine/store/sqlite.py:14) 5",
    # handing a step to the store's thread is not the step
    "SqliteStore._run (engine/store/sqlite.py:14);to_thread_run_sync (trio/_threads.py:15) 5",
]


def test_waits_are_idle_and_work_goes_to_the_first_area_that_names_a_frame() -> None:
    samples = parse_raw(_ENGINE, "engine")
    assert samples.idle == 80
    assert samples.busy == {
        "store: transactions": 45,
        "store: handing steps to its thread": 5,
        "fan-out: WebSocket and SSE sends": 20,
        "dispatching: RunJobs to the child": 30,
        OTHER: 10,
    }


def test_a_process_frame_is_not_a_frame_of_the_program() -> None:
    lines = [
        'process 7:"python -m engine.child";ChildProgram.flush (engine/child/program.py:1) 3',
        'process 7:"python -m engine.child" 2',
    ]
    samples = parse_raw(lines, "child")
    assert samples.busy == {"writing reports": 3}
    assert samples.idle == 2


def test_each_process_cpu_is_shared_by_its_busy_samples_per_job() -> None:
    samples = {
        "engine": parse_raw(_ENGINE, "engine"),
        "child": parse_raw(["ChildProgram.run_job (engine/child/program.py:1) 5"], "child"),
    }
    rows = areas_per_job(samples, {"engine": 1.0, "child": 0.5}, jobs=10_000)
    by_area = {(row.process, row.area): row.microseconds_per_job for row in rows}
    # engine: 100 µs per job over 110 busy samples; child: 50 µs, all one area
    assert by_area == pytest.approx(
        {
            ("engine", "store: transactions"): 45 / 1.1,
            ("engine", "store: handing steps to its thread"): 5 / 1.1,
            ("engine", "dispatching: RunJobs to the child"): 30 / 1.1,
            ("engine", "fan-out: WebSocket and SSE sends"): 20 / 1.1,
            ("engine", OTHER): 10 / 1.1,
            ("child", "job path: tasks, scopes, handlers"): 50.0,
        }
    )
    assert [row.microseconds_per_job for row in rows] == sorted(
        (row.microseconds_per_job for row in rows), reverse=True
    )
    table = render(rows, {"engine": 1.0, "child": 0.5}, 10_000)
    assert "| child | job path: tasks, scopes, handlers | 50.0 | 100% |" in table
    assert "Total µs of CPU per job: child 50.0, engine 100.0." in table


def test_a_line_that_is_not_a_sample_is_refused_and_no_jobs_means_no_table() -> None:
    with pytest.raises(ValueError, match="not a py-spy raw line"):
        parse_raw(["frame (x.py:1) many"], "engine")
    with pytest.raises(ValueError, match="no job finished"):
        areas_per_job({"engine": parse_raw(_ENGINE, "engine")}, {"engine": 1.0}, jobs=0)
