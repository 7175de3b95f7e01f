"""Garbage on the child's IPC pipe, and a silent child.

Each round runs two batches side by side on one engine, one job in flight
at a time in each:

* ``garbage``: a ``garble`` job writes a line that is not a message onto
  its child's IPC pipe; the engine takes that for a crash of the child, so
  the batch gets an ``error`` event naming the malformed IPC, the job fails
  and the batch's other jobs complete in the restarted child;
* ``silent``: a ``hang`` job blocks its child's main thread for ten
  minutes, so the child writes nothing at all, not even an answer to the
  engine's ping. The engine runs with ``CHILD_SILENCE_SECONDS`` = ``silence``
  (5 s, 3 s quick): past it the child is killed as crashed, so the batch
  gets an ``error`` naming the silence (``silent_errors``), the hang job is
  failed (it started: its one attempt counts) and the batch's other jobs
  complete in the restarted child. ``/health`` is checked while the child
  is silent (``checked_in_silence``: the hang job was active and the batch
  running then), and the garbage batch beside it runs to its end.

After each round the engine has no child left (it keeps no warm one here).
"""

from __future__ import annotations

from functools import partial
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
_HANG = jobs_of("hang", [{"seconds": 600}])


def _errors(events: list[dict[str, Any]], batch_id: str) -> list[str]:
    return [
        e["data"].get("error", "")
        for e in events
        if e["event"] == "error" and e["data"]["batchId"] == batch_id
    ]


async def _hang_active(api: Api, batch_id: str) -> bool:
    return any(job["type"] == "hang" for job in await api.jobs(batch_id, "active"))


async def _pipes(run: Run, outcome: Outcome) -> None:
    rounds = run.rounds_or(10, 2)
    figures = outcome.figures
    silence = run.seconds_or(5, 3)
    figures.update(rounds=rounds, silence_s=silence, garbage_errors=0, silent_errors=0)
    figures.update(checked_in_silence=0, hang_not_failed=0)
    figures.update(incomplete=0, unhealthy=0, children_left=0)
    events: list[dict[str, Any]] = []
    async with open_engines() as engines, trio.open_nursery() as nursery:
        store = f"sqlite:///{run.workdir / 'pipes.db'}"
        engine = await engines.start("serve", store, **_ENV, CHILD_SILENCE_SECONDS=f"{silence:g}")
        await nursery.start(record_events, engine.url, events)
        async with Api(engine.url) as api:
            for round_ in range(rounds):
                garbage, silent = f"garbage-{round_}", f"silent-{round_}"
                await api.create(garbage, [*jobs_of("garble", [{}]), *_NOOPS])
                await api.create(silent, [*_HANG, *_NOOPS])
                for batch_id in (silent, garbage):
                    await api.start(batch_id)
                hung = await poll_until(partial(_hang_active, api, silent), silence)
                status, body = await api.health()
                figures["unhealthy"] += status != 200 or body["status"] != "ok"
                running = (await api.batch(silent))["running"]
                figures["checked_in_silence"] += hung and running
                await api.wait_idle(garbage, timeout=60)
                await api.wait_idle(silent, timeout=silence + 60)
                await trio.sleep(0.2)  # the last events reach the recorder
                status, body = await api.health()
                figures["unhealthy"] += status != 200 or body["status"] != "ok"
                figures["garbage_errors"] += any(
                    "malformed IPC" in error for error in _errors(events, garbage)
                )
                figures["silent_errors"] += any(
                    f"sent nothing for {silence:g} s" in error for error in _errors(events, silent)
                )
                for job in await api.jobs(garbage) + await api.jobs(silent):
                    if job["type"] == "hang":
                        figures["hang_not_failed"] += job["state"] != "failed"
                    elif job["type"] != "garble":
                        figures["incomplete"] += job["state"] != "completed"
                await poll_until(engine.has_no_child, 2)
                figures["children_left"] += sum(alive(c) for c in engine.children())
        nursery.cancel_scope.cancel()
    outcome.expect(figures["garbage_errors"] == rounds, "a garbage batch got no error event")
    outcome.expect(figures["silent_errors"] == rounds, "a silent batch got no error event")
    outcome.expect(figures["checked_in_silence"] == rounds, "the silence ended before the checks")
    for name in ("incomplete", "hang_not_failed", "unhealthy", "children_left"):
        outcome.expect(figures[name] == 0, f"{name}={figures[name]}")


SCENARIO = Scenario("ipc-garbage-silent", _pipes, limit_seconds=600)
