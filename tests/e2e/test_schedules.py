"""Schedules end to end: ``GET /api/schedules`` on a real server, and real
engine processes sharing a store, three on one Redis and two on one SQLite
file, that each fire an every-minute schedule exactly once per due time."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import trio

from engine.config.schedules import Schedule
from engine.store import Store, open_store
from engine.store.sqlite import open_sqlite_store
from engine.testing import open_test_server
from protocols.lifecycle import JobState
from tests.e2e.processes import EngineProcess, run_engines

_FIRED = re.compile(r"schedule tick fired for (\S+): batch (\S+)")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


async def test_schedules_are_listed_with_their_next_and_last_firing(tmp_path: Path) -> None:
    schedules = {
        "nightly": Schedule(name="nightly", cron="30 2 * * *", type="echo", batch_prefix="n"),
        "often": Schedule(name="often", cron="*/5 * * * *", type="noop", batch_prefix="o"),
    }
    with trio.fail_after(30):
        async with (
            open_test_server(tmp_path, schedules=schedules) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            before = time.time()
            listed = (await client.get("/api/schedules")).json()
            # Another engine of the cluster fires "nightly" (same store file).
            async with open_sqlite_store(str(tmp_path / "batchyard.db")) as other:
                assert await other.claim_firing("nightly", 1_700_015_400.0)
            after = (await client.get("/api/schedules")).json()
    nightly, often = listed["schedules"]
    assert (nightly["name"], nightly["cron"], nightly["type"]) == ("nightly", "30 2 * * *", "echo")
    assert (often["name"], often["cron"], often["type"]) == ("often", "*/5 * * * *", "noop")
    assert nightly["lastRunAt"] is None and often["lastRunAt"] is None
    assert nightly["nextRunAt"] == _iso(schedules["nightly"].next_due(before) or 0)
    next_often = datetime.fromisoformat(often["nextRunAt"]).timestamp()
    assert before < next_often <= before + 305 and next_often % 300 == 0
    assert after["schedules"][0]["lastRunAt"] == "2023-11-15T02:30:00+00:00"
    assert after["schedules"][1]["lastRunAt"] is None


def _fired(engines: list[EngineProcess]) -> Counter[tuple[str, str]]:
    return Counter(
        (match[1], match[2])
        for engine in engines
        for line in engine.lines
        if (match := _FIRED.search(line))
    )


async def _first_batch(store: Store) -> str:
    while True:
        batches = await store.list_batches()
        if batches:
            return batches[0].batch_id
        await trio.sleep(0.5)


async def _completed(store: Store, batch_id: str) -> None:
    while True:
        if (await store.counts(batch_id)).completed == 1:
            break
        await trio.sleep(0.2)
    [job] = (await store.list_jobs(batch_id)).jobs
    assert (job.state, job.result) == (JobState.COMPLETED, {"at": "every minute"})


async def test_engines_sharing_a_store_fire_each_due_time_once(
    tmp_path: Path, redis_url: str
) -> None:
    """Five engines wake at the same due time; on each store exactly one
    fires it (its batch then runs on one engine), and the others lose the
    claim. The test waits for the next minute, up to about a minute."""
    config = tmp_path / "batchyard.toml"
    config.write_text(
        '[schedules.tick]\ncron = "* * * * *"\ntype = "echo"\npayload = {at = "every minute"}\n'
    )
    sqlite_url = f"sqlite:///{tmp_path / 'batchyard.db'}"
    flags = ("--config", str(config))
    with trio.fail_after(150):
        async with (
            run_engines(3, "worker", redis_url, *flags, WARM_CHILDREN="0") as on_redis,
            run_engines(2, "worker", sqlite_url, *flags, WARM_CHILDREN="0") as on_sqlite,
            open_store(redis_url) as redis_store,
            open_store(sqlite_url) as sqlite_store,
        ):
            on_redis_batch = await _first_batch(redis_store)
            on_sqlite_batch = await _first_batch(sqlite_store)
            await _completed(redis_store, on_redis_batch)
            await _completed(sqlite_store, on_sqlite_batch)
            await trio.sleep(3)  # every engine woke for that due time by now
            for engine in (*on_redis, *on_sqlite):
                assert await engine.stop() == 0
    for engines, batch_id in ((on_redis, on_redis_batch), (on_sqlite, on_sqlite_batch)):
        fired = _fired(engines)
        assert list(fired.values()) == [1] * len(fired), fired  # never twice
        assert batch_id in {batch for _, batch in fired}
        assert re.fullmatch(r"tick-\d{8}T\d{4}", batch_id)
