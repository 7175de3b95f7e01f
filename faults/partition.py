"""Redis, three engines, one of them partitioned.

Two servers run on this host and a worker in a network namespace of its own
(``faults.netns``; needs root: elsewhere the scenario says so in its figures
and checks nothing), all on one private ``redis-server`` with 3 s leases.
Each round adds two batches of ``sleep`` jobs (one attempt each); the
servers start no batch by themselves, so the worker runs both. Once jobs
complete the worker's link is cut; the round's figure is the time until
both runs go on on the servers (the worker's leases lapse after 3 s). 1 s
later the link comes back.

At the end, read from Redis: every job ``completed`` with one attempt, no
job completed twice, and no job started on two engines but those the cut
worker's child held when the link went down (they were in flight there);
the worker, back on the network, has no child left. The cut worker fences
itself before its leases lapse, so it has no child left when the servers
take its runs over (``worker_children_at_takeover``), and each job that
started on both sides started again only after every child of the cut
worker was gone (``overlapping_starts``: second starts, by the ``startedAt``
of their ``active`` event, before the moment the runner saw the worker's
last child gone, polled every 20 ms; on one host the clocks agree).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter

import trio

from engine.store import NewJob, Store, open_store
from engine.store.event_log import EventLog
from faults.engines import EngineProcess, alive, open_engines
from faults.netns import Link, network_namespace
from faults.redis import RedisServer
from faults.report import Outcome
from faults.scenario import Run, Scenario
from faults.waiting import poll_until
from protocols.events import Event, JobUpdate
from protocols.lifecycle import JobState

__all__ = ["SCENARIO"]

_LEASE = 3.0
_JOBS = 40


def _start_times(events: list[Event]) -> dict[str, list[float]]:
    """Each job's starts (``startedAt`` of its ``active`` events), in order."""
    starts: dict[str, list[float]] = {}
    for e in events:
        if isinstance(e.data, JobUpdate) and e.data.started_at is not None:
            starts.setdefault(e.data.job_id, []).append(e.data.started_at)
    return {job_id: sorted(times) for job_id, times in starts.items()}


def _job_events(events: list[Event], status: JobState) -> Counter[str]:
    return Counter(
        e.data.job_id
        for e in events
        if isinstance(e.data, JobUpdate)
        and e.data.status is status
        and (status is not JobState.ACTIVE or e.data.started_at is not None)
    )


async def _log(store: Store) -> list[Event]:
    assert isinstance(store, EventLog)
    events: list[Event] = []
    while page := await store.read_events(events[-1].seq if events else 0, limit=1000):
        events += page
    return events


async def _children_gone(worker: EngineProcess, gone: list[float]) -> None:
    """Note in ``gone`` the wall-clock time once no child of ``worker`` runs."""
    if await poll_until(worker.has_no_child, 60):
        gone.append(time.time())


async def _round(
    store: Store, number: int, worker: EngineProcess, link: Link, held: set[str]
) -> tuple[list[str], float, int, float]:
    """Two batches run on the worker, its link cut until both go on
    elsewhere; their ids, that time, how many children the cut worker
    still had then, and when (epoch seconds) its last child was gone."""
    worker_id = worker.engine_id
    batch_ids = [f"p{number}-{i}" for i in range(2)]
    for batch_id in batch_ids:
        await store.create_batch(batch_id, "sleep")
        await store.add_jobs(batch_id, [NewJob(type="sleep", payload={"seconds": 0.1})] * _JOBS)

    async def on_worker() -> bool:
        for batch_id in batch_ids:
            batch = await store.get_batch(batch_id)
            if batch.run_owner != worker_id or (await store.counts(batch_id)).completed < 2:
                return False
        return True

    if not await poll_until(on_worker, 60):
        raise RuntimeError(f"round {number}: the worker did not run both batches")
    link.cut()
    cut_at = time.monotonic()
    gone: list[float] = []
    # Read once the link is down: what the store has the worker hold then is
    # all its child can still run (it claims nothing more).
    for batch_id in batch_ids:
        page = await store.list_jobs(batch_id, state=JobState.ACTIVE, limit=100)
        held.update(job.job_id for job in page.jobs)

    async def elsewhere() -> bool:
        owners = [(await store.get_batch(b)).run_owner for b in batch_ids]
        return all(owner not in (None, worker_id) for owner in owners)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_children_gone, worker, gone)
        moved = await poll_until(elsewhere, 30)
        taken = time.monotonic() - cut_at
        children = sum(alive(child) for child in worker.children())
        await trio.sleep(1.0)
        link.restore()
    if not moved:
        raise RuntimeError(f"round {number}: the runs did not go on elsewhere in 30 s")
    return batch_ids, taken, children, gone[0] if gone else math.inf


async def _partition(run: Run, outcome: Outcome) -> None:
    rounds = run.rounds_or(3, 1)
    figures = outcome.figures
    with contextlib.ExitStack() as stack:
        link = stack.enter_context(network_namespace())
        if link is None:
            figures["netns"] = "not available here; nothing checked"
            return
        redis = stack.enter_context(
            RedisServer.running(run.workdir / "redis", also_bind=[link.host_address])
        )
        env = {"LEASE_SECONDS": str(_LEASE), "JOB_MAX_ATTEMPTS": "1"}
        batch_ids: list[str] = []
        held: set[str] = set()
        takeovers = []
        overlaps = 0
        gone_at: dict[str, float] = {}  # job held at a cut -> its worker's children gone
        async with open_engines() as engines, open_store(redis.url) as store:
            for _ in range(2):
                await engines.start("serve", redis.url, **env)
            worker = await engines.start(
                "worker",
                f"redis://{link.host_address}:{redis.port}/0",
                wrapper=link.wrapper,
                MAX_ACTIVE_BATCHES="2",
                WARM_CHILDREN="0",
                **env,
            )
            for number in range(rounds):
                in_flight: set[str] = set()
                ids, taken, children, gone = await _round(store, number, worker, link, in_flight)
                held |= in_flight
                gone_at.update(dict.fromkeys(in_flight, gone))
                batch_ids += ids
                takeovers.append(taken)
                overlaps += children

            async def finished() -> bool:
                counts = [await store.counts(b) for b in batch_ids]
                return all(c.completed == _JOBS and not c.pending for c in counts)

            await poll_until(finished, 120)
            await trio.sleep(2 * _LEASE / 3)
            children = sum(alive(child) for child in worker.children())
            events = await _log(store)
            jobs = [j for b in batch_ids for j in (await store.list_jobs(b, limit=1000)).jobs]
    starts = _job_events(events, JobState.ACTIVE)
    twice = {job_id for job_id, n in starts.items() if n > 1}
    completions = _job_events(events, JobState.COMPLETED)
    figures.update(rounds=rounds, engines=3, lease_s=_LEASE, jobs=len(jobs))
    figures["takeover_max_s"] = max(takeovers)
    figures["not_completed_once"] = sum(
        (j.state, j.attempts) != (JobState.COMPLETED, 1) for j in jobs
    )
    figures["completed_twice"] = sum(n > 1 for n in completions.values())
    figures["held_at_cut"] = len(held)
    figures["started_twice"] = len(twice)
    figures["started_twice_not_held"] = len(twice - held)
    figures["worker_children_at_takeover"] = overlaps
    started = _start_times(events)
    figures["overlapping_starts"] = sum(
        started[job_id][1] < gone_at.get(job_id, math.inf) for job_id in twice
    )
    figures["worker_children_left"] = children
    outcome.expect(len(jobs) == rounds * 2 * _JOBS, "jobs missing")
    for name in (
        "not_completed_once",
        "completed_twice",
        "started_twice_not_held",
        "worker_children_at_takeover",
        "overlapping_starts",
        "worker_children_left",
    ):
        outcome.expect(figures[name] == 0, f"{name}={figures[name]}")


SCENARIO = Scenario("redis-partition", _partition, limit_seconds=400)
