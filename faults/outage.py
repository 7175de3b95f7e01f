"""Redis stopped and started again mid-run, and connections cut at random
points (mid-transaction among them).

One engine on a private, persistent ``redis-server`` runs a batch of short
``sleep`` jobs (one attempt each) in two phases:

* restart: once jobs complete, the server is SIGKILLed, stays down for
  3 s (``/health`` is asked all along: it must say ``degraded``), and is
  started again on the same data; the run goes on;
* cuts: every 0.02-0.1 s for 5 s, ``CLIENT KILL`` drops every client
  connection of the server, the engine's included, wherever its calls are.

After each phase every job is ``completed`` (none failed, none lost, none
left pending), no job's ``completed`` event came twice, ``/health`` is
``ok`` again, and the figure is the time from the server's return until a
job completes again. Both faults are far shorter than the lease (30 s), so
the engine never fences itself (``fenced``: its lines saying it stopped its
runs for want of a renewal).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import trio

from faults.api import Api, jobs_of
from faults.engines import open_engines
from faults.events import record_events
from faults.redis import RedisServer, redis_command
from faults.report import Outcome
from faults.scenario import Run, Scenario
from faults.waiting import poll_until

__all__ = ["SCENARIO"]

_JOBS = 200
_DOWN_SECONDS = 3.0
_CUT_SECONDS = 5.0
_ENV = {"JOB_MAX_ATTEMPTS": "1", "WARM_CHILDREN": "0"}


async def _completed(api: Api, batch_id: str) -> int:
    counts: dict[str, int] = (await api.batch(batch_id))["counts"]
    return counts["completed"]


async def _restart(api: Api, redis: RedisServer, figures: dict[str, Any]) -> None:
    redis.kill()
    degraded = asked = 0
    with trio.move_on_after(_DOWN_SECONDS):
        while True:
            status, body = await api.health()
            asked += 1
            degraded += status == 503 and body["status"] == "degraded"
            await trio.sleep(0.1)
    figures["restart_health_degraded"] = f"{degraded}/{asked}"
    redis.start()
    back = time.monotonic()
    before = await _completed(api, "restart")

    async def moving() -> bool:
        return await _completed(api, "restart") > before

    if await poll_until(moving, 60):
        figures["restart_resume_s"] = time.monotonic() - back


async def _cuts(redis: RedisServer, figures: dict[str, Any]) -> None:
    chance = random.Random()
    cuts = dropped = 0
    with trio.move_on_after(_CUT_SECONDS):
        while True:
            await trio.sleep(chance.uniform(0.02, 0.1))
            for kind in ("normal", "pubsub"):
                reply = redis_command(redis.port, "CLIENT", "KILL", "TYPE", kind, "SKIPME", "yes")
                dropped += int(reply[1:].strip() or 0)  # ":N", the connections it closed
            cuts += 1
    figures["cuts"] = cuts
    figures["connections_cut"] = dropped


async def _phase(api: Api, label: str, fault: Any, figures: dict[str, Any]) -> None:
    await api.create(label, jobs_of("sleep", [{"seconds": 0.02}] * _JOBS))
    await api.start(label)

    async def working() -> bool:
        return await _completed(api, label) > 0

    await poll_until(working, 30)
    await fault()
    await api.wait_idle(label, timeout=120)
    counts, doubled = await api.ledger(label)
    figures[f"{label}_completed"] = f"{counts['completed']}/{_JOBS}"
    figures[f"{label}_two_states"] = doubled

    async def healthy() -> bool:
        return (await api.health())[0] == 200

    figures[f"{label}_health_back"] = await poll_until(healthy, 15)


async def _outage(run: Run, outcome: Outcome) -> None:
    figures = outcome.figures
    events: list[dict[str, Any]] = []
    with RedisServer.running(run.workdir / "redis") as redis:
        async with open_engines() as engines, trio.open_nursery() as nursery:
            engine = await engines.start("serve", redis.url, **_ENV)
            await nursery.start(record_events, engine.url, events)
            async with Api(engine.url) as api:
                await _phase(api, "restart", lambda: _restart(api, redis, figures), figures)
                await _phase(api, "cuts", lambda: _cuts(redis, figures), figures)
            figures["engine_alive"] = engine.process.returncode is None
            figures["fenced"] = sum("no lease renewal reached" in x for x in engine.lines)
            nursery.cancel_scope.cancel()
    done = Counter(
        e["data"]["jobId"]
        for e in events
        if e["event"] == "job:progress" and e["data"]["status"] == "completed"
    )
    figures["completed_events"] = sum(done.values())
    figures["completed_twice"] = sum(n > 1 for n in done.values())
    for label in ("restart", "cuts"):
        outcome.expect(figures[f"{label}_completed"] == f"{_JOBS}/{_JOBS}", f"{label}: not done")
        outcome.expect(figures[f"{label}_two_states"] == 0, f"{label}: jobs in two states")
        outcome.expect(figures[f"{label}_health_back"], f"{label}: /health not ok again")
    outcome.expect("restart_resume_s" in figures, "restart: work never went on")
    outcome.expect(
        not figures["restart_health_degraded"].startswith("0/"), "/health never degraded"
    )
    outcome.expect(figures["completed_twice"] == 0, "jobs completed twice")
    outcome.expect(figures["engine_alive"], "the engine died")
    outcome.expect(figures["fenced"] == 0, "the engine fenced its runs")


SCENARIO = Scenario("redis-outage", _outage, limit_seconds=400)
