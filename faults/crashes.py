"""Child crashes: rounds of a batch whose child crashes beside a healthy batch.

Each round starts two batches on one engine: one holding a ``crash`` job
among ``noop`` jobs (its child exits 3, is restarted once, crashes again and
the run ends with ``error``), and one of short ``sleep`` jobs. After each
round every job of both is in exactly one state, the healthy batch completed
every job, and the engine has no child left (it keeps no warm one here).
"""

from __future__ import annotations

import time

from faults.api import Api, jobs_of
from faults.engines import alive, open_engines
from faults.report import Outcome
from faults.scenario import Run, Scenario
from faults.waiting import poll_until

__all__ = ["SCENARIO"]

_CRASHING = [*jobs_of("noop", [None] * 3), *jobs_of("crash", [{"exitCode": 3}])]
_CRASHING += jobs_of("noop", [None] * 3)
_HEALTHY = jobs_of("sleep", [{"seconds": 0.01}] * 6)


async def _crashes(run: Run, outcome: Outcome) -> None:
    rounds = run.rounds_or(100, 5)
    figures = outcome.figures
    figures.update(rounds=rounds, jobs=0, lost=0, two_states=0, active_left=0)
    figures.update(healthy_incomplete=0, children_left=0, completed=0, failed=0, pending=0)
    begun = time.monotonic()
    store = f"sqlite:///{run.workdir / 'crashes.db'}"
    env = {"MAX_ACTIVE_BATCHES": "2", "BATCH_RETRIES": "1", "JOB_MAX_ATTEMPTS": "2"}
    async with open_engines() as engines:
        engine = await engines.start("serve", store, WARM_CHILDREN="0", **env)
        async with Api(engine.url) as api:
            for round_ in range(rounds):
                batches = {f"crash-{round_}": _CRASHING, f"healthy-{round_}": _HEALTHY}
                for batch_id, jobs in batches.items():
                    await api.create(batch_id, jobs)
                    await api.start(batch_id)
                for batch_id, jobs in batches.items():
                    await api.wait_idle(batch_id, timeout=60)
                    counts, doubled = await api.ledger(batch_id)
                    figures["jobs"] += len(jobs)
                    figures["lost"] += len(jobs) - sum(counts.values())
                    figures["two_states"] += doubled
                    figures["active_left"] += counts["active"]
                    for state in ("completed", "failed", "pending"):
                        figures[state] += counts[state]
                    if batch_id.startswith("healthy"):
                        figures["healthy_incomplete"] += len(jobs) - counts["completed"]
                await poll_until(engine.has_no_child, 2)
                figures["children_left"] += sum(alive(c) for c in engine.children())
    figures["seconds"] = time.monotonic() - begun
    for name in ("lost", "two_states", "active_left", "healthy_incomplete", "children_left"):
        outcome.expect(figures[name] == 0, f"{name}={figures[name]}")


SCENARIO = Scenario("child-crashes", _crashes, limit_seconds=900)
