"""Where each microsecond of a no-op job goes, in the served engine and its
child: ``python -m bench.profile [--jobs 100000] [--seconds 4]``.

Runs W1's shape (one batch of no-op jobs behind the server, one WebSocket
watcher on ``/ws?batch=1``, W1's concurrency and claim size), and while it
runs samples the server and its batch child with py-spy (``pip install
py-spy``; it needs the right to trace them, as root or with
``kernel.yama.ptrace_scope`` 0), reads each process's CPU seconds and the
jobs finished over the same window, and prints the table of
``bench.stacks``: µs of CPU per job by process and area. The sampling runs
``--nonblocking`` (the processes are not paused to be read), so it barely
slows them. Nothing here asserts anything: it explains the W1 figures of a
``python -m bench`` run.

The engine and its batch child (the busiest child; the warm spare idles)
are sampled by one py-spy each, attached by pid: py-spy's
``--subprocesses`` follows only the children a process starts after it
attached. The window's jobs and CPU seconds are read just before and after
the sampling, so they include py-spy's attach and exit: the jobs/s it
prints reads a little low; the shares per job do not depend on it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import trio

from bench.live.client import Api, open_api, open_events
from bench.live.server import open_server
from bench.sizes import FULL
from bench.stacks import areas_per_job, parse_raw, render

__all__ = ["main"]

#: The warm child is ready well within this, and the run is past its start.
_SETTLE_SECONDS = 1.5


def _cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """User + system seconds so far of each process."""
    return {name: sum(process.cpu_times()[:2]) for name, process in processes.items()}


def _batch_child(server: psutil.Process) -> psutil.Process:
    """The busiest child of the server: the batch's (the warm spare idles)."""
    children = server.children()
    if not children:
        raise RuntimeError("the server has no child")
    return max(children, key=lambda child: sum(child.cpu_times()[:2]))


async def _finished(api: Api, batch_id: str) -> int:
    counts = (await api.batch(batch_id))["counts"]
    return int(counts["completed"]) + int(counts["failed"])


async def profile(jobs: int, seconds: float, rate: int, workdir: Path) -> str:
    """Sample one served W1 batch for ``seconds``; the table as Markdown.

    Raises:
        RuntimeError: the batch ended inside the window (ask for more jobs),
            or py-spy failed.
    """
    beside = Path(sys.executable).with_name("py-spy")  # installed in this environment
    py_spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("py-spy is not installed (python -m pip install py-spy)")
    environment = {
        "BATCHYARD_STORE": f"sqlite:///{workdir / 'profile.db'}",
        "EMBEDDING_CONCURRENCY": str(FULL.w1_concurrency),
        "EMBEDDING_BATCH_SIZE": str(FULL.w1_batch_size),
        "EMBEDDING_RATE_LIMIT": "0",
        "WARM_CHILDREN": "1",
    }
    async with open_server(workdir, environment) as server, open_api(server.url) as api:
        batch_id = await api.create_batch("noop", [{}] * jobs)
        await trio.sleep(_SETTLE_SECONDS)
        async with open_events(server.ws_url, batch_id) as events, trio.open_nursery() as watch:
            watch.start_soon(events.until_end, batch_id)
            await api.process_all(batch_id)
            await trio.sleep(_SETTLE_SECONDS)
            engine = psutil.Process(server.process.pid)
            processes = {"engine": engine, "child": _batch_child(engine)}
            done_before, cpu_before = await _finished(api, batch_id), _cpu_seconds(processes)
            began = time.monotonic()
            command = [py_spy, "record", "--nonblocking", "-f", "raw"]
            command += ["-r", str(rate), "-d", str(max(1, round(seconds)))]
            async with trio.open_nursery() as sampling:
                for name, process in processes.items():
                    output = ["-p", str(process.pid), "-o", str(workdir / f"{name}.txt")]
                    sampling.start_soon(
                        partial(trio.run_process, [*command, *output], capture_stdout=True)
                    )
            elapsed = time.monotonic() - began
            done_after, cpu_after = await _finished(api, batch_id), _cpu_seconds(processes)
            if done_after >= jobs:
                raise RuntimeError(f"the batch ended inside the window: ask for more than {jobs}")
            watch.cancel_scope.cancel()  # the rest of the batch is not measured
    finished = done_after - done_before
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    samples = {
        name: parse_raw((workdir / f"{name}.txt").read_text().splitlines(), name) for name in cpu
    }
    rows = areas_per_job(samples, cpu, finished)
    return (
        f"{finished:,} no-op jobs finished in {elapsed:.1f} s ({finished / elapsed:,.0f} jobs/s) "
        f"while sampled at {rate} Hz.\n\n" + render(rows, cpu, finished)
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the batch")
    parser.add_argument("--seconds", type=float, default=4.0, help="sampling window")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batchyard-profile-") as directory:
        try:
            print(trio.run(profile, args.jobs, args.seconds, args.rate, Path(directory)))
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            raise SystemExit(f"bench.profile: {exc}") from None


if __name__ == "__main__":
    main()
