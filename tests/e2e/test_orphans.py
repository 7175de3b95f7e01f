"""An engine killed with SIGKILL leaves no child behind."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import trio

_ENGINE_SCRIPT = """
import sys, trio
from pathlib import Path
from engine.testing import jobs_of, open_test_engine

async def main():
    async with open_test_engine(Path(sys.argv[1]), concurrency=2, warm_children=1) as engine:
        jobs = jobs_of("sleep", [{"seconds": 60}] * 2) + jobs_of("hang", [{"seconds": 60}])
        batch_id, _ = await engine.create_batch(None, "hang", jobs)
        with engine.subscribe([batch_id]) as sub:
            await engine.start(batch_id)
            async for event in sub:
                if event.event == "job:progress":
                    break
        print("running", flush=True)
        await trio.sleep_forever()

trio.run(main)
"""


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_children_exit_within_two_seconds_of_the_engines_death(tmp_path: Path) -> None:
    engine = await trio.lowlevel.open_process(
        [sys.executable, "-c", _ENGINE_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE
    )
    try:
        assert engine.stdout is not None
        with trio.fail_after(30):
            line = await engine.stdout.receive_some(100)
        assert line.startswith(b"running")
        children = psutil.Process(engine.pid).children()
        assert len(children) == 2  # the running child and one warm spare
        engine.send_signal(signal.SIGKILL)
        await engine.wait()
        killed_at = trio.current_time()
        with trio.fail_after(10):
            # An orphan's exit has no event to wait on, and its zombie stays
            # until init reaps it, so exiting is polled as "gone or zombie".
            while any(_running(child) for child in children):  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert trio.current_time() - killed_at < 2.0
    finally:
        if engine.returncode is None:
            engine.kill()
            await engine.wait()
