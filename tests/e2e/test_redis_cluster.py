"""A cluster on Redis with every part real: ``batchyard serve`` and
``batchyard worker`` processes, their children, a ``redis-server`` of the
test's own, on loopback, real time with generous bounds.

What the cluster did is read back from Redis afterwards: the event log every
engine appends to (each event once, in seq order, whichever engine ran the
batch) and the jobs (state and attempts). Every process a test starts is
killed when its block ends, whatever happened in it. The partition test
puts an engine in a network namespace of its own (``tests.e2e.netns``),
which needs root: elsewhere it is skipped, except under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from engine.store import NewJob, Store, open_store
from engine.store.event_log import EventLog
from protocols.events import Event, JobUpdate
from protocols.frames import parse_ws_message
from protocols.lifecycle import JobState
from tests.e2e.helpers import create_batch, open_ws
from tests.e2e.netns import network_namespace
from tests.e2e.processes import EngineProcess, run_engine, run_engines
from tests.redis_server import free_port, running_redis

# --- reading what the cluster did -------------------------------------------


async def _log(store: Store) -> list[Event]:
    """Every event the cluster's engines appended, in seq order."""
    assert isinstance(store, EventLog)
    events: list[Event] = []
    while page := await store.read_events(events[-1].seq if events else 0, limit=1000):
        events += page
    return events


async def _jobs(store: Store, batch_ids: Iterable[str]) -> list[Any]:
    return [job for b in batch_ids for job in (await store.list_jobs(b, limit=1000)).jobs]


async def _wait_completed(store: Store, batch_ids: list[str], total: int) -> None:
    """Poll until ``total`` jobs of the batches are completed and none is
    pending or active."""
    while True:
        counts = [await store.counts(batch_id) for batch_id in batch_ids]
        if sum(c.completed for c in counts) == total and not any(c.pending for c in counts):
            return
        await trio.sleep(0.1)


def _job_events(events: list[Event], status: JobState) -> Counter[str]:
    """How many ``job:progress`` events of ``status`` each job has."""
    return Counter(
        e.data.job_id
        for e in events
        if isinstance(e.data, JobUpdate)
        and e.data.status is status
        and (status is not JobState.ACTIVE or e.data.started_at is not None)
    )


async def _each_job_completed_once(store: Store, batch_ids: list[str], total: int) -> None:
    """Every job completed, none charged twice, none completed twice (the
    log holds one ``completed`` per job)."""
    jobs = await _jobs(store, batch_ids)
    assert len(jobs) == total
    assert Counter((job.state, job.attempts) for job in jobs) == {(JobState.COMPLETED, 1): total}
    completed = _job_events(await _log(store), JobState.COMPLETED)
    assert completed == Counter({job.job_id: 1 for job in jobs})


async def _add_batches(store: Store, count: int, jobs: int, seconds: float) -> list[str]:
    batch_ids = [f"b{i:02}" for i in range(count)]
    for batch_id in batch_ids:
        await store.create_batch(batch_id, "sleep")
        await store.add_jobs(batch_id, [NewJob(type="sleep", payload={"seconds": seconds})] * jobs)
    return batch_ids


@asynccontextmanager
async def _clients(engines: list[EngineProcess]) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(httpx.AsyncClient(base_url=engine.url))
            for engine in engines
        ]


async def _engine_id(client: httpx.AsyncClient) -> str:
    engine_id: str = (await client.get("/api/status")).json()["engineId"]
    return engine_id


# --- three servers ------------------------------------------------------------


async def test_three_servers_run_a_batch_on_one_and_every_one_says_so(redis_url: str) -> None:
    with trio.fail_after(60):
        async with (
            run_engines(3, "serve", redis_url) as engines,
            _clients(engines) as (on_a, on_b, on_c),
        ):
            ids = [await _engine_id(client) for client in (on_a, on_b, on_c)]
            batch_id = await create_batch(on_a, "sleep", [{"seconds": 30}] * 2)
            first = await on_a.post(f"/api/jobs/process/all/{batch_id}")
            assert (first.status_code, first.json()["status"]) == (200, "started")
            for client in (on_b, on_c):
                again = await client.post(f"/api/jobs/process/all/{batch_id}")
                assert (again.status_code, again.json()["status"]) == (202, "already-running")
            for client in (on_a, on_b, on_c):
                view = (await client.get(f"/api/batches/{batch_id}")).json()
                assert (view["running"], view["engineId"]) == (True, ids[0])
                status = (await client.get("/api/status")).json()
                listed = {e["engineId"]: e["pid"] for e in status["engines"]}
                assert listed == {i: e.process.pid for i, e in zip(ids, engines, strict=True)}


async def test_a_client_of_one_server_sees_a_run_on_another_once_in_seq_order(
    redis_url: str,
) -> None:
    jobs = 20
    with trio.fail_after(60):
        async with (
            run_engines(2, "serve", redis_url) as (a, b),
            httpx.AsyncClient(base_url=b.url) as on_b,
        ):
            batch_id = await create_batch(on_b, "echo", list(range(jobs)))
            seen: list[Event] = []
            async with open_ws(a.url, f"batchId={batch_id}&batch=1") as ws:
                response = await on_b.post(f"/api/jobs/process/all/{batch_id}")
                assert response.status_code == 200, response.text
                while not seen or seen[-1].event != "done":
                    seen += parse_ws_message(await ws.get_message())
    names = Counter(e.event for e in seen)
    assert seen[0].event == "processing:started" and names["processing:started"] == 1
    assert seen[-1].event == "done" and names["done"] == 1
    assert seen[-1].data.completed == jobs
    assert len(_job_events(seen, JobState.COMPLETED)) == jobs
    assert set(_job_events(seen, JobState.COMPLETED).values()) == {1}
    seqs = [e.seq for e in seen]
    assert all(x < y for x, y in itertools.pairwise(seqs)), seqs


_LIMITS = """
[types.noop]
rate_limit = "10/1s"

[types.sleep]
concurrency = 2
"""


async def test_a_types_rate_and_concurrency_hold_across_three_servers(
    tmp_path: Path, redis_url: str
) -> None:
    config = tmp_path / "batchyard.toml"
    config.write_text(_LIMITS)
    noop_jobs, sleep_jobs = 10, 4
    with trio.fail_after(90):
        async with (
            run_engines(
                3,
                "serve",
                redis_url,
                "--config",
                str(config),
                MAX_ACTIVE_BATCHES="2",
                EMBEDDING_CONCURRENCY="4",
            ) as engines,
            _clients(engines) as clients,
            open_store(redis_url) as store,
        ):
            batches = {"noop": [], "sleep": []}  # type: dict[str, list[str]]
            for client in clients:
                batches["noop"].append(await create_batch(client, "noop", [None] * noop_jobs))
                payloads = [{"seconds": 0.2}] * sleep_jobs
                batches["sleep"].append(await create_batch(client, "sleep", payloads))
            for i, client in enumerate(clients):
                for type_ in ("noop", "sleep"):
                    started = await client.post(f"/api/jobs/process/all/{batches[type_][i]}")
                    assert started.status_code == 200, started.text
            await _wait_completed(store, batches["noop"], 3 * noop_jobs)
            await _wait_completed(store, batches["sleep"], 3 * sleep_jobs)
            events = await _log(store)
    starts = sorted(
        e.data.started_at
        for e in events
        if isinstance(e.data, JobUpdate)
        and e.data.started_at is not None
        and e.data.batch_id in batches["noop"]
    )
    assert len(starts) == 3 * noop_jobs
    # 30 starts at 10 per second need two full windows after the first.
    assert starts[-1] - starts[0] >= 1.9
    # A type's rate holds on handler starts: each start's take is moved to
    # the moment its handler started (the child's report), so no window of
    # exactly 1 s holds more than 10. How close the 11th start after any
    # start came to its window's end is printed.
    fullest = _fullest_window(starts, 1.0)
    margin = min(u - t - 1.0 for t, u in zip(starts, starts[10:], strict=False))
    print(f"type rate 10/1s on three engines: {fullest} handler starts in the fullest 1 s")
    print(f"  (the 11th start after a start came {margin * 1000:.1f} ms after its window)")
    assert fullest <= 10
    assert _peak_active(events, batches["sleep"]) == 2


def _fullest_window(starts: list[float], seconds: float) -> int:
    """The most of the sorted ``starts`` in any window of ``seconds``."""
    return max(sum(1 for u in starts[i:] if u - t < seconds) for i, t in enumerate(starts))


def _peak_active(events: list[Event], batch_ids: list[str]) -> int:
    """The most jobs of the batches active at once, in the log's order."""
    active: set[str] = set()
    peak = 0
    for event in events:
        if not isinstance(event.data, JobUpdate) or event.data.batch_id not in batch_ids:
            continue
        if event.data.started_at is not None:
            active.add(event.data.job_id)
        elif event.data.finished:
            active.discard(event.data.job_id)
        peak = max(peak, len(active))
    return peak


# --- workers ------------------------------------------------------------------


async def test_three_workers_drain_thirty_batches_running_each_once(redis_url: str) -> None:
    with trio.fail_after(90):
        async with (
            open_store(redis_url) as store,
            run_engines(3, "worker", redis_url, MAX_ACTIVE_BATCHES="2") as workers,
        ):
            batch_ids = await _add_batches(store, 30, jobs=3, seconds=0.05)
            await _wait_completed(store, batch_ids, 90)
            assert [await worker.stop() for worker in workers] == [0, 0, 0]
            events = await _log(store)
            await _each_job_completed_once(store, batch_ids, 90)
    runs = Counter(e.data.batch_id for e in events if e.event == "processing:started")
    twice = [  # what the runs of a batch run more than once did
        (e.seq, e.event, getattr(e.data, "job_id", None), getattr(e.data, "reason", None))
        for e in events
        if runs[e.data.batch_id] != 1 and not e.event.endswith("progress")
    ]
    assert runs == Counter(dict.fromkeys(batch_ids, 1)), twice
    ends = Counter(e.data.batch_id for e in events if e.event == "done")
    assert ends == runs
    busy = [w for w in workers if any("started by itself" in line for line in w.lines)]
    assert len(busy) >= 2, [w.lines for w in workers]


# --- recovery -----------------------------------------------------------------


async def test_a_sigkilled_servers_run_goes_on_elsewhere_within_the_lease(
    redis_url: str,
) -> None:
    lease, jobs = 3.0, 30
    with trio.fail_after(90):
        async with (
            open_store(redis_url) as store,
            run_engines(2, "serve", redis_url, LEASE_SECONDS=str(lease)) as (doomed, survivor),
            _clients([doomed, survivor]) as (on_doomed, on_survivor),
        ):
            survivor_id = await _engine_id(on_survivor)
            batch_id = await create_batch(on_doomed, "sleep", [{"seconds": 0.3}] * jobs)
            assert (await on_doomed.post(f"/api/jobs/process/all/{batch_id}")).status_code == 200
            while (await store.counts(batch_id)).completed < 4:  # noqa: ASYNC110
                await trio.sleep(0.05)
            await doomed.kill()
            killed = trio.current_time()
            while (await store.get_batch(batch_id)).run_owner != survivor_id:  # noqa: ASYNC110
                await trio.sleep(0.02)
            went_on = trio.current_time() - killed
            print(f"SIGKILL -> run going on elsewhere: {went_on:.2f}s (lease {lease}s)")
            # No later than the lease plus one renewal period (and a look).
            assert went_on <= lease + lease / 3 + 1
            await _wait_completed(store, [batch_id], jobs)
            # The dead engine's claims were refunded: one attempt each.
            jobs_after = await _jobs(store, [batch_id])
            assert {(j.state, j.attempts) for j in jobs_after} == {(JobState.COMPLETED, 1)}
            # What it appended before it died is in the log once; nothing twice.
            completed = _job_events(await _log(store), JobState.COMPLETED)
            assert set(completed.values()) == {1}


async def test_every_job_completes_once_across_a_redis_restart(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "redis"
    data.mkdir()
    url = f"redis://127.0.0.1:{port}/0"
    with trio.fail_after(90), contextlib.ExitStack() as servers:
        first = servers.enter_context(running_redis(data, port, persistent=True))
        async with run_engines(2, "worker", url, MAX_ACTIVE_BATCHES="2") as workers:
            async with open_store(url) as store:
                batch_ids = await _add_batches(store, 4, jobs=15, seconds=0.1)
                while sum([(await store.counts(b)).completed for b in batch_ids]) < 10:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            first.kill()
            first.wait()
            await trio.sleep(1.0)
            servers.enter_context(running_redis(data, port, persistent=True))
            async with open_store(url) as store:
                await _wait_completed(store, batch_ids, 60)
                await _each_job_completed_once(store, batch_ids, 60)
            assert [await worker.stop() for worker in workers] == [0, 0]
    outages = [w for w in workers if any("the store is unavailable" in x for x in w.lines)]
    assert outages == workers


# --- a partition ----------------------------------------------------------------


async def test_an_engine_cut_off_from_redis_stops_its_run_and_does_not_run_it_twice(
    tmp_path: Path,
) -> None:
    lease, jobs = 3.0, 40
    port = free_port()
    with (
        trio.fail_after(90),
        network_namespace() as link,
        running_redis(tmp_path, port, also_bind=[link.host_address]),
    ):
        url = f"redis://127.0.0.1:{port}/0"
        async with (
            open_store(url) as store,
            # A server starts no batch by itself, so the worker cut off
            # later is the one that runs it first; the server takes over.
            run_engine("serve", url, LEASE_SECONDS=str(lease)) as survivor,
            run_engine(
                "worker",
                f"redis://{link.host_address}:{port}/0",
                wrapper=("ip", "netns", "exec", link.namespace),
                LEASE_SECONDS=str(lease),
            ) as cut_off,
        ):
            async with httpx.AsyncClient(base_url=survivor.url) as client:
                survivor_id = await _engine_id(client)
            (batch_id,) = await _add_batches(store, 1, jobs=jobs, seconds=0.25)
            while (await store.counts(batch_id)).completed < 4:  # noqa: ASYNC110
                await trio.sleep(0.05)
            assert (await store.get_batch(batch_id)).run_owner == cut_off.engine_id
            held = {
                j.job_id
                for j in (await store.list_jobs(batch_id, state=JobState.ACTIVE, limit=100)).jobs
            }
            link.cut()
            cut_at = trio.current_time()
            while (await store.get_batch(batch_id)).run_owner != survivor_id:  # noqa: ASYNC110
                await trio.sleep(0.05)
            print(f"cut off -> run going on elsewhere: {trio.current_time() - cut_at:.2f}s")
            await trio.sleep(1.0)
            link.restore()
            await _wait_completed(store, [batch_id], jobs)
            await trio.sleep(2 * lease / 3)  # a heartbeat of each engine
            records = {r.engine_id: r for r in await store.engines()}
            events = await _log(store)
            jobs_after = await _jobs(store, [batch_id])
    # Only what the cut-off engine's child held when the link went down ran
    # on both engines (it was in flight there); all else ran once.
    starts = _job_events(events, JobState.ACTIVE)
    assert {job_id for job_id, n in starts.items() if n > 1} <= held
    assert len(starts) == jobs and max(starts.values()) <= 2
    assert {(j.state, j.attempts) for j in jobs_after} == {(JobState.COMPLETED, 1)}
    assert set(_job_events(events, JobState.COMPLETED).values()) == {1}
    # The cut-off engine stopped its run (its child killed) before its
    # leases could lapse; its `done` reached the log once it was back on the
    # network, while the other engine went on with the run.
    ends = [e.data.reason for e in events if e.event == "done"]
    assert ends == ["fenced", None]
    assert any("before another engine may take it over" in line for line in cut_off.lines)
    assert records[cut_off.engine_id].running_batches == ()
