"""Engine SIGKILL: rounds of killing a busy engine at a random point and
starting it again on the same store.

One engine works through batches of short ``sleep`` jobs (one attempt each,
so an attempt wrongly charged for the engine's death fails a job). Each
round waits until jobs complete, waits a random 0.1-1.5 s more, notes the
engine's children and SIGKILLs it; one round in four (``early_kills``)
instead kills the engine 0-0.3 s after its API answered, while it may still
be taking back its predecessor's run; 2 s later none of them may still run. A
new engine then starts on the same store, takes back what its predecessor
held (same host: without waiting for the lease) and resumes the batch; the
round's figure is the time from the new engine's launch (interpreter
start-up included) until a job completes again. At
the end every job is ``completed``, and no job's ``completed`` event was
seen twice (every engine's events are recorded over ``/ws``).

It runs on SQLite (``engine-sigkill``) and on a private Redis
(``engine-sigkill-redis``), both with the default 30 s lease: the resume
times show that a restart on the same host takes back at once what its
predecessor held, without waiting for the lease.
"""

from __future__ import annotations

import random
import signal
import statistics
import time
from collections import Counter
from typing import Any

import trio

from faults.api import Api, jobs_of
from faults.engines import EngineProcess, Engines, alive, open_engines
from faults.events import record_events
from faults.redis import RedisServer
from faults.report import Outcome
from faults.scenario import Run, Scenario
from faults.waiting import poll_until

__all__ = ["SCENARIO", "SCENARIO_REDIS"]

_BATCH_JOBS = 300
_JOB_SECONDS = 0.05
#: Two batches at once: a new batch added while the last one ends can start.
_ENV = {
    "JOB_MAX_ATTEMPTS": "1",
    "LEASE_SECONDS": "30",
    "WARM_CHILDREN": "1",
    "MAX_ACTIVE_BATCHES": "2",
}


class _Life:
    """The engines of the scenario one after the other, each recorded."""

    def __init__(self, engines: Engines, nursery: trio.Nursery, store: str) -> None:
        self._engines = engines
        self._nursery = nursery
        self._store = store
        self.events: list[dict[str, Any]] = []

    async def start(self) -> EngineProcess:
        engine = await self._engines.start("serve", self._store, **_ENV)
        await self._nursery.start(record_events, engine.url, self.events)
        return engine


async def _completed(api: Api, batch_ids: list[str]) -> int:
    total = 0
    for batch_id in batch_ids:
        total += (await api.batch(batch_id))["counts"]["completed"]
    return total


async def _wait_for_more(api: Api, batch_ids: list[str], what: str) -> None:
    """Until a job completes; ``RuntimeError`` when none does in 30 s."""
    than = await _completed(api, batch_ids)

    async def more() -> bool:
        return await _completed(api, batch_ids) > than

    if not await poll_until(more, 30):
        raise RuntimeError(f"no job completed in 30 s {what}")


async def _new_batch(api: Api, batch_ids: list[str]) -> None:
    batch_id = f"kill-{len(batch_ids)}"
    await api.create(batch_id, jobs_of("sleep", [{"seconds": _JOB_SECONDS}] * _BATCH_JOBS))
    await api.start(batch_id)
    batch_ids.append(batch_id)


async def _kills_on_sqlite(run: Run, outcome: Outcome) -> None:
    await _kills(run, outcome, f"sqlite:///{run.workdir / 'kills.db'}")


async def _kills_on_redis(run: Run, outcome: Outcome) -> None:
    with RedisServer.running(run.workdir / "redis") as redis:
        await _kills(run, outcome, redis.url)


async def _kills(run: Run, outcome: Outcome, store: str) -> None:
    rounds = run.rounds_or(20, 3)
    chance = random.Random()
    batch_ids: list[str] = []
    orphans, early_kills, resumes = 0, 0, []
    async with open_engines() as engines, trio.open_nursery() as nursery:
        life = _Life(engines, nursery, store)
        engine = await life.start()
        async with Api(engine.url) as api:
            await _new_batch(api, batch_ids)
        for _ in range(rounds):
            early = chance.random() < 0.25
            early_kills += early
            async with Api(engine.url) as api:
                if (await api.batch(batch_ids[-1]))["counts"]["pending"] < _BATCH_JOBS // 3:
                    await _new_batch(api, batch_ids)
                if not early:
                    await _wait_for_more(api, batch_ids, "before the kill")
            await trio.sleep(chance.uniform(0.0, 0.3) if early else chance.uniform(0.1, 1.5))
            children = engine.children()
            await engine.signal_and_wait(signal.SIGKILL)
            await trio.sleep(2.0)
            orphans += sum(alive(child) for child in children)
            restarted_at = time.monotonic()
            engine = await life.start()
            async with Api(engine.url) as api:
                await _wait_for_more(api, batch_ids, "after the restart")
            resumes.append(time.monotonic() - restarted_at)
        async with Api(engine.url) as api:
            jobs = counts = 0
            for batch_id in batch_ids:
                await api.wait_idle(batch_id, timeout=120)
                ledger, _ = await api.ledger(batch_id)
                jobs += _BATCH_JOBS
                counts += ledger["completed"]
        nursery.cancel_scope.cancel()
    # On Redis each engine's recorder replays the cluster's log from its
    # start, so an event is counted once per seq, not once per recorder.
    done = Counter(
        job_id
        for seq, job_id in {
            (e["seq"], e["data"]["jobId"])
            for e in life.events
            if e["event"] == "job:progress" and e["data"]["status"] == "completed"
        }
    )
    twice = sum(n > 1 for n in done.values())
    outcome.figures.update(
        rounds=rounds,
        early_kills=early_kills,
        jobs=jobs,
        orphans_2s=orphans,
        not_completed=jobs - counts,
        completed_events=sum(done.values()),
        completed_twice=twice,
        resume_median_s=statistics.median(resumes),
        resume_max_s=max(resumes),
    )
    outcome.expect(orphans == 0, f"{orphans} children alive 2 s after the kill")
    outcome.expect(jobs == counts, f"{jobs - counts} jobs not completed")
    outcome.expect(twice == 0, f"{twice} jobs completed twice")


SCENARIO = Scenario("engine-sigkill", _kills_on_sqlite, limit_seconds=900)
SCENARIO_REDIS = Scenario("engine-sigkill-redis", _kills_on_redis, limit_seconds=900)
