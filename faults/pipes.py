"""Garbage on the child's IPC pipe, and a silent child.

Each round runs two batches side by side on one engine, one job in flight
at a time in each:

* ``garbage``: a ``garble`` job writes a line that is not a message onto
  its child's IPC pipe; the engine takes that for a crash of the child, so
  the batch gets an ``error`` event naming the malformed IPC, the job fails
  and the batch's other jobs complete in the restarted child;
* ``silent``: a ``hang`` job blocks its child's main thread, so the child
  writes nothing at all for ``silence`` seconds (10 s, 3 s quick), then
  goes on. The engine has no job timeout nor any watchdog on a child's
  silence yet, so nothing ends the wait early and no ``error`` comes; what
  is checked is that the engine stays healthy meanwhile (``/health`` ok
  while the child is silent, the garbage batch beside it runs to its end)
  and that the silent batch then completes every job. ``silent_errors``
  counts the ``error`` events the silent batches got, as a figure.

After each round the engine has no child left (it keeps no warm one here).
"""

from __future__ import annotations

from typing import Any

import trio

from faults.api import Api, jobs_of
from faults.engines import alive, open_engines
from faults.events import record_events
from faults.report import Outcome
from faults.scenario import Run, Scenario
from faults.waiting import poll_until

__all__ = ["SCENARIO"]

_NOOPS = jobs_of("noop", [None] * 3)
_ENV = {
    "MAX_ACTIVE_BATCHES": "2",
    "BATCH_RETRIES": "1",
    "JOB_MAX_ATTEMPTS": "1",
    "EMBEDDING_CONCURRENCY": "1",
    "WARM_CHILDREN": "0",
}


def _errors(events: list[dict[str, Any]], batch_id: str) -> list[str]:
    return [
        e["data"].get("error", "")
        for e in events
        if e["event"] == "error" and e["data"]["batchId"] == batch_id
    ]


async def _pipes(run: Run, outcome: Outcome) -> None:
    rounds = run.rounds_or(10, 2)
    figures = outcome.figures
    silence = run.seconds_or(10, 3)
    figures.update(rounds=rounds, silence_s=silence, garbage_errors=0, silent_errors=0)
    figures.update(checked_in_silence=0)
    figures.update(incomplete=0, unhealthy=0, children_left=0)
    events: list[dict[str, Any]] = []
    async with open_engines() as engines, trio.open_nursery() as nursery:
        store = f"sqlite:///{run.workdir / 'pipes.db'}"
        engine = await engines.start("serve", store, **_ENV)
        await nursery.start(record_events, engine.url, events)
        async with Api(engine.url) as api:
            for round_ in range(rounds):
                garbage, silent = f"garbage-{round_}", f"silent-{round_}"
                await api.create(garbage, [*jobs_of("garble", [{}]), *_NOOPS])
                await api.create(silent, [*jobs_of("hang", [{"seconds": silence}]), *_NOOPS])
                for batch_id in (silent, garbage):
                    await api.start(batch_id)
                await api.wait_idle(garbage, timeout=60)
                status, body = await api.health()
                figures["unhealthy"] += status != 200 or body["status"] != "ok"
                figures["checked_in_silence"] += (await api.batch(silent))["running"]
                await api.wait_idle(silent, timeout=silence + 60)
                await trio.sleep(0.2)  # the last events reach the recorder
                figures["garbage_errors"] += any(
                    "malformed IPC" in error for error in _errors(events, garbage)
                )
                figures["silent_errors"] += len(_errors(events, silent))
                for job in await api.jobs(garbage) + await api.jobs(silent):
                    if job["type"] != "garble":
                        figures["incomplete"] += job["state"] != "completed"
                await poll_until(engine.has_no_child, 2)
                figures["children_left"] += sum(alive(c) for c in engine.children())
        nursery.cancel_scope.cancel()
    outcome.expect(figures["garbage_errors"] == rounds, "a garbage batch got no error event")
    outcome.expect(figures["checked_in_silence"] == rounds, "the silence ended before the checks")
    for name in ("incomplete", "unhealthy", "children_left"):
        outcome.expect(figures[name] == 0, f"{name}={figures[name]}")


SCENARIO = Scenario("ipc-garbage-silent", _pipes, limit_seconds=600)
