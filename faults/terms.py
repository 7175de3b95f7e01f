"""SIGTERM with hung jobs: an engine whose child is stuck in a job that
ignores cancellation and the shutdown message (``hang``) exits within its
grace plus 0.3 s, with code 0, every round.

Each round starts an engine on a store of its own, with a one-second grace,
runs a batch of two ``hang`` jobs and a ``sleep`` job, and sends SIGTERM
once the hung jobs are active. The figures are the slowest exit after the
signal, the exit codes that were not 0, the children still alive after the
exit, and the jobs that the engine started again on the same store (which
resumes the batch) does not find pending or active: a start cut short by
shutdown is refunded, so none may have failed.
"""

from __future__ import annotations

import signal
import time

from faults.api import Api, jobs_of
from faults.engines import alive, open_engines
from faults.report import Outcome
from faults.scenario import Run, Scenario
from faults.waiting import poll_until

__all__ = ["SCENARIO"]

_GRACE = 1.0
_MARGIN = 0.3
_JOBS = [*jobs_of("hang", [{"seconds": 600}] * 2), *jobs_of("sleep", [{"seconds": 600}])]


async def _terms(run: Run, outcome: Outcome) -> None:
    rounds = run.rounds_or(10, 2)
    exits: list[float] = []
    codes: list[int] = []
    orphans = lost = 0
    env = {"SHUTDOWN_GRACE_SECONDS": str(_GRACE), "EMBEDDING_CONCURRENCY": "3"}
    for round_ in range(rounds):
        store = f"sqlite:///{run.workdir / f'term-{round_}.db'}"
        async with open_engines() as engines:
            engine = await engines.start("serve", store, **env)
            async with Api(engine.url) as api:
                await api.create("hung", _JOBS)
                await api.start("hung")

                async def all_active(api: Api = api) -> bool:
                    return bool((await api.batch("hung"))["counts"]["active"] == len(_JOBS))

                if not await poll_until(all_active, 30):
                    outcome.misses.append(f"round {round_}: the jobs never all ran")
                    continue
            children = engine.children()
            sent = time.monotonic()
            codes.append(await engine.signal_and_wait(signal.SIGTERM))
            exits.append(time.monotonic() - sent)
            orphans += sum(alive(child) for child in children)
            restarted = await engines.start("serve", store, AUTO_START="0", **env)
            async with Api(restarted.url) as api:
                counts, _ = await api.ledger("hung")
                lost += len(_JOBS) - counts["pending"] - counts["active"]
    slowest = max(exits, default=float("nan"))
    bad_codes = [code for code in codes if code != 0]
    outcome.figures.update(
        rounds=rounds, grace_s=_GRACE, exit_max_s=slowest, exit_codes_not_0=len(bad_codes)
    )
    outcome.figures.update(children_left=orphans, jobs_failed_or_lost=lost)
    outcome.expect(slowest <= _GRACE + _MARGIN, f"an exit took {slowest:.2f}s")
    outcome.expect(not bad_codes, f"exit codes {bad_codes}")
    outcome.expect(orphans == 0, f"{orphans} children outlived the engine")
    outcome.expect(lost == 0, f"{lost} jobs failed or lost")


SCENARIO = Scenario("sigterm-hung", _terms, limit_seconds=600)
