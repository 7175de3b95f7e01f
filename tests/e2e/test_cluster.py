"""Several engine processes on one SQLite store: ``batchyard worker``s share
the batches, ``process/all`` answers 202 on every engine but the one
running the batch, a SIGKILLed engine's run goes on elsewhere once its
lease expires, and a restart on the same host takes it back at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from engine.store import NewJob, Store
from engine.store.sqlite import open_sqlite_store
from protocols.lifecycle import JobState
from tests.e2e.helpers import create_batch
from tests.e2e.processes import run_engine, run_engines


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'batchyard.db'}"


@asynccontextmanager
async def _store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_sqlite_store(str(tmp_path / "batchyard.db")) as store:
        yield store


async def _jobs(store: Store, batch_id: str) -> list[Any]:
    return list((await store.list_jobs(batch_id, limit=1000)).jobs)


async def _all_completed_once(store: Store, batch_id: str, total: int) -> None:
    jobs = await _jobs(store, batch_id)
    assert [job.state for job in jobs] == [JobState.COMPLETED] * total
    assert {job.attempts for job in jobs} == {1}  # a dead engine's claims refunded


async def _drained(store: Store, batch_ids: list[str]) -> bool:
    counts = [await store.counts(batch_id) for batch_id in batch_ids]
    return all(c.pending == c.active == 0 for c in counts)


async def test_workers_share_the_batches_and_run_each_once(tmp_path: Path) -> None:
    batch_ids = [f"b{i}" for i in range(9)]
    with trio.fail_after(120):
        async with _store(tmp_path) as store:
            async with run_engines(3, "worker", _sqlite(tmp_path)) as workers:
                for batch_id in batch_ids:
                    await store.create_batch(batch_id, "sleep")
                    await store.add_jobs(
                        batch_id, [NewJob(type="sleep", payload={"seconds": 0.2})] * 4
                    )
                # Workers report to no one here: the store is polled.
                while not await _drained(store, batch_ids):  # noqa: ASYNC110
                    await trio.sleep(0.1)
                assert [await w.stop() for w in workers] == [0, 0, 0]
            for batch_id in batch_ids:
                await _all_completed_once(store, batch_id, 4)
            assert await store.engines() == []  # each left the registry on its way out
    starts = [
        line.split("[batch ")[1].split("]")[0]
        for worker in workers
        for line in worker.lines
        if "started by itself" in line
    ]
    assert sorted(starts) == batch_ids  # each batch ran once, on one worker
    busy = [w for w in workers if any("started by itself" in line for line in w.lines)]
    assert len(busy) >= 2, [w.lines for w in workers]


async def _status(client: httpx.AsyncClient) -> dict[str, Any]:
    status: dict[str, Any] = (await client.get("/api/status")).json()
    return status


async def test_a_batch_runs_on_one_engine_and_every_engine_says_so(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with (
            run_engine("serve", _sqlite(tmp_path)) as a,
            run_engine("serve", _sqlite(tmp_path)) as b,
            httpx.AsyncClient(base_url=a.url) as on_a,
            httpx.AsyncClient(base_url=b.url) as on_b,
        ):
            a_id, b_id = (await _status(on_a))["engineId"], (await _status(on_b))["engineId"]
            batch_id = await create_batch(on_a, "sleep", [{"seconds": 30}] * 2)
            assert (await on_a.post(f"/api/jobs/process/all/{batch_id}")).status_code == 200
            second = await on_b.post(f"/api/jobs/process/all/{batch_id}")
            assert (second.status_code, second.json()["status"]) == (202, "already-running")
            for client in (on_a, on_b):
                view = (await client.get(f"/api/batches/{batch_id}")).json()
                assert (view["running"], view["engineId"]) == (True, a_id)
                listed = (await client.get("/api/batches")).json()["batches"]
                assert [(v["running"], v["engineId"]) for v in listed] == [(True, a_id)]
            assert (await on_b.delete(f"/api/batches/{batch_id}")).status_code == 409
            engines = {e["engineId"]: e for e in (await _status(on_b))["engines"]}
            assert set(engines) == {a_id, b_id}
            assert engines[a_id]["pid"] == a.process.pid
            assert (await _status(on_b))["runningBatches"] == []
            assert [await a.stop(), await b.stop()] == [0, 0]


async def _wait_runner(client: httpx.AsyncClient, batch_id: str, engine_id: str) -> float:
    """Poll until ``engine_id`` runs the batch; when it did (Trio clock)."""
    while (await client.get(f"/api/batches/{batch_id}")).json()["engineId"] != engine_id:  # noqa: ASYNC110
        await trio.sleep(0.02)
    return trio.current_time()


async def _start_on(client: httpx.AsyncClient) -> str:
    batch_id = await create_batch(client, "sleep", [{"seconds": 0.3}] * 30)
    assert (await client.post(f"/api/jobs/process/all/{batch_id}")).status_code == 200
    while (await client.get(f"/api/batches/{batch_id}")).json()["counts"]["completed"] < 4:  # noqa: ASYNC110
        await trio.sleep(0.05)
    return batch_id


async def test_a_sigkilled_engines_run_goes_on_elsewhere_within_the_lease(
    tmp_path: Path,
) -> None:
    lease = 3.0
    with trio.fail_after(120):
        async with (
            _store(tmp_path) as store,
            run_engine("serve", _sqlite(tmp_path), LEASE_SECONDS=str(lease)) as survivor,
            httpx.AsyncClient(base_url=survivor.url) as on_survivor,
        ):
            survivor_id = (await _status(on_survivor))["engineId"]
            async with (
                run_engine("serve", _sqlite(tmp_path), LEASE_SECONDS=str(lease)) as doomed,
                httpx.AsyncClient(base_url=doomed.url) as on_doomed,
            ):
                batch_id = await _start_on(on_doomed)
                await doomed.kill()
                killed = trio.current_time()
            went_on = await _wait_runner(on_survivor, batch_id, survivor_id)
            print(f"SIGKILL -> run going on elsewhere: {went_on - killed:.2f}s (lease {lease}s)")
            # No later than the lease plus one renewal period (and one look).
            assert went_on - killed <= lease + lease / 3 + 1
            while (await store.counts(batch_id)).completed < 30:  # noqa: ASYNC110
                await trio.sleep(0.1)
            await _all_completed_once(store, batch_id, 30)
            assert await survivor.stop() == 0


async def test_a_restart_on_the_same_host_takes_the_run_back_at_once(tmp_path: Path) -> None:
    with trio.fail_after(120):
        async with _store(tmp_path) as store:
            async with (
                run_engine("serve", _sqlite(tmp_path)) as doomed,
                httpx.AsyncClient(base_url=doomed.url) as on_doomed,
            ):
                batch_id = await _start_on(on_doomed)
                await doomed.kill()
            restarted = trio.current_time()
            async with (
                run_engine("serve", _sqlite(tmp_path)) as successor,
                httpx.AsyncClient(base_url=successor.url) as on_successor,
            ):
                listening = trio.current_time()
                successor_id = (await _status(on_successor))["engineId"]
                went_on = await _wait_runner(on_successor, batch_id, successor_id)
                print(
                    f"restart -> run taken back: {went_on - restarted:.2f}s "
                    f"({went_on - listening:.2f}s after listening; lease 30s)"
                )
                assert went_on - restarted < 15  # not the 30 s lease
                assert any("took back its runs" in line for line in successor.lines)
                while (await store.counts(batch_id)).completed < 30:  # noqa: ASYNC110
                    await trio.sleep(0.1)
                await _all_completed_once(store, batch_id, 30)
                assert await successor.stop() == 0
