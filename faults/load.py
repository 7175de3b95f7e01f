"""Load: 1,000 WebSocket subscribers and steady API traffic for 60 s while
batches run (200 subscribers for 10 s quick).

The subscribers live in four processes of their own (``faults.subscribers``)
so the engine's server is not sharing a process with its clients. Once
they are all connected, for the scenario's length: batches of 200 short
``sleep`` jobs run one after another, and four API clients each ask, 20 ms
after each answer, in turn for ``/api/status``, ``/health``, the current batch, a page of its
jobs and (one time in five) creates a small batch. Then each subscriber
stops reading and closes.

Figures: subscribers connected, the requests made and how many failed
(an exception or an unexpected status), the median and slowest request, the jobs that
completed, the frames the subscribers received, and the frames lost: for
every subscriber, each seq that some other subscriber got while both were
connected and it did not. Misses: any subscriber not connected or closed
early, any request failed, any frame lost or out of order.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import time
from typing import Any

import orjson
import trio

from faults.api import Api, jobs_of
from faults.engines import open_engines
from faults.report import Outcome
from faults.scenario import Run, Scenario

__all__ = ["SCENARIO"]

_PROCESSES = 4
_API_CLIENTS = 4
_ENV = {"MAX_ACTIVE_BATCHES": "2", "WARM_CHILDREN": "1"}


async def _lines(process: trio.Process) -> Any:
    assert process.stdout is not None
    buffer = b""
    async for chunk in process.stdout:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode()


async def _subscribers(
    url: str,
    count: int,
    results: list[dict[str, Any]],
    stop_at: trio.MemoryReceiveChannel[float],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """One subscriber process: started once connected; puts its summary
    into ``results`` once it has the stop time and reached it."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "faults.subscribers", url, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        lines = _lines(process)
        await lines.__anext__()  # "connected N"
        task_status.started()
        assert process.stdin is not None
        await process.stdin.send_all(f"{await stop_at.receive()}\n".encode())
        async for line in lines:
            results.append(orjson.loads(line))
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()


class _Traffic:
    """What the API clients saw: each request's time, and each failure."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.failures: list[str] = []


async def _traffic(api: Api, current: list[str], stop: float, seen: _Traffic) -> None:
    """One API client: a request every 20 ms after the last answer, until
    ``stop``."""
    for turn in itertools.count():
        if time.time() >= stop:
            break
        batch_id = current[0]
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/api/status", {}),
            ("GET", "/health", {}),
            ("GET", f"/api/batches/{batch_id}", {}),
            ("GET", f"/api/batches/{batch_id}/jobs", {"params": {"limit": 50}}),
        ]
        if turn % 5 == 4:
            body = {"type": "noop", "jobs": [{"payload": turn}]}
            calls.append(("POST", "/api/batches", {"json": body}))
        method, path, extra = calls[turn % len(calls)]
        begun = time.monotonic()
        try:
            response = await api.call(method, path, **extra)
            if response.status_code >= 300:
                answer = f"{response.status_code} {response.text[:160]}"
                seen.failures.append(f"{method} {path}: {answer}")
        except Exception as exc:  # a failed request is a figure
            seen.failures.append(f"{method} {path}: {type(exc).__name__}")
        seen.times.append(time.monotonic() - begun)
        await trio.sleep(0.02)


async def _batches(api: Api, current: list[str], stop: float, figures: dict[str, Any]) -> None:
    completed = 0
    for number in itertools.count():
        if time.time() >= stop:
            break
        current[0] = batch_id = f"load-{number}"
        await api.create(batch_id, jobs_of("sleep", [{"seconds": 0.02}] * 200))
        await api.start(batch_id)
        while (view := await api.batch(batch_id))["running"] and time.time() < stop:  # noqa: ASYNC110
            await trio.sleep(0.1)
        completed += view["counts"]["completed"]
    figures["jobs_completed"] = completed


def _lost(results: list[dict[str, Any]]) -> int:
    """Seqs some process's subscribers got in the common window that
    another's did not, times the latter's subscribers; plus what each
    process found lost among its own."""
    low = max(r["window"][0] for r in results)
    high = min(r["window"][1] for r in results)
    seen: list[set[int]] = [{q for q in r["seqs"] if low <= q <= high} for r in results]
    union = set().union(*seen)
    across = sum(
        len(union - mine) * int(r["connected"]) for mine, r in zip(seen, results, strict=True)
    )
    return across + sum(int(r["lost"]) for r in results)


async def _load(run: Run, outcome: Outcome) -> None:
    subscribers = 200 if run.quick else 1000
    seconds = run.seconds_or(60, 10)
    figures = outcome.figures
    figures.update(subscribers=subscribers, seconds_loaded=seconds)
    results: list[dict[str, Any]] = []
    async with open_engines() as engines, trio.open_nursery() as nursery:
        engine = await engines.start("serve", f"sqlite:///{run.workdir / 'load.db'}", **_ENV)
        senders = []
        for _ in range(_PROCESSES):
            send, receive = trio.open_memory_channel[float](1)
            senders.append(send)
            await nursery.start(
                _subscribers, engine.url, subscribers // _PROCESSES, results, receive
            )
        stop = time.time() + seconds
        for send in senders:
            await send.send(stop)
        traffic = _Traffic()
        async with Api(engine.url) as api, trio.open_nursery() as load:
            current = ["none"]
            await api.create("none", jobs_of("noop", [None]))
            for _ in range(_API_CLIENTS):
                load.start_soon(_traffic, api, current, stop, traffic)
            load.start_soon(_batches, api, current, stop, figures)
        with trio.fail_after(60):
            while len(results) < _PROCESSES:  # noqa: ASYNC110 - filled by the tasks above
                await trio.sleep(0.1)
        # What the engine said of its store: under load a slow answer reads
        # as an outage (a figure: the store itself never failed here).
        said = [line for line in engine.lines if "the store is" in line]
        figures["store_outages_logged"] = sum("unavailable" in line for line in said)
        if said:
            figures["first_store_line"] = repr(said[0][24:200])
    figures["requests"] = len(traffic.times)
    figures["request_failures"] = len(traffic.failures)
    figures["request_median_s"] = statistics.median(traffic.times or [0.0])
    figures["request_max_s"] = max(traffic.times or [0.0])
    errors = [e for r in results for e in r["errors"]]
    figures["connected"] = sum(r["connected"] for r in results)
    figures["subscriber_errors"] = len(errors)
    figures["frames"] = sum(r["frames"] for r in results)
    figures["frames_lost"] = _lost(results)
    figures["out_of_order"] = sum(r["out_of_order"] for r in results)
    outcome.expect(not errors, f"subscribers failed: {sorted(set(errors))[:3]}")
    outcome.expect(figures["connected"] == subscribers, "not every subscriber connected")
    outcome.expect(not traffic.failures, f"requests failed: {traffic.failures[:3]}")
    outcome.expect(figures["frames_lost"] == 0, "frames lost")
    outcome.expect(figures["out_of_order"] == 0, "frames out of order")


SCENARIO = Scenario("load", _load, limit_seconds=300)
