"""The fault suite's runner, exercised: a quick bounded run of two scenarios
against real engines, and what it makes of a scenario that breaks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import trio

from faults.__main__ import run_scenario
from faults.report import Outcome
from faults.scenario import Run, Scenario

ROOT = Path(__file__).resolve().parents[2]


def test_a_quick_run_passes_and_leaves_no_process() -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    # Two scenarios whose verdict does not hang on the machine's speed.
    command = [sys.executable, "-m", "faults", "--quick", "--rounds", "2"]
    finished = subprocess.run(
        [*command, "child-crashes", "ipc-garbage-silent"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = finished.stdout.splitlines()
    assert finished.returncode == 0, finished.stdout + finished.stderr[-2000:]
    assert [line.split(":")[0] for line in lines[:2]] == [
        "PASS child-crashes",
        "PASS ipc-garbage-silent",
    ]
    assert "rounds=2 " in lines[0] and "lost=0 " in lines[0]
    assert lines[-1] == "2 of 2 scenarios passed"
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


async def test_a_scenario_that_raises_and_leaves_a_process_misses_twice(tmp_path: Path) -> None:
    left: list[trio.Process] = []

    async def broken(run: Run, outcome: Outcome) -> None:
        outcome.figures["rounds"] = 1
        left.append(await trio.lowlevel.open_process(["sleep", "60"]))
        raise ValueError("the store went away")

    # A process that was there before (a test's own server) is not the scenario's.
    earlier = await trio.lowlevel.open_process(["sleep", "60"])
    try:
        outcome = await run_scenario(Scenario("broken", broken, limit_seconds=10), Run(tmp_path))
        with trio.fail_after(5):
            await left[0].wait()  # the runner killed it
        assert left[0].returncode == -9
        assert earlier.returncode is None
    finally:
        earlier.kill()
        await earlier.wait()
    assert not outcome.passed
    assert outcome.misses[0] == "raised ValueError: the store went away"
    assert outcome.misses[1].startswith("processes left behind: [")
    assert "sleep 60" in outcome.misses[1]
    assert outcome.line().startswith("MISS broken: rounds=1 seconds=")
