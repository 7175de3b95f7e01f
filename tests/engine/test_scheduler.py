"""Schedules on trio's MockClock: a fake engine's wall clock is trio's
(``trio_wall_clock``: 2023-11-14T22:13:20Z at trio time 0), so the first
due time of an every-minute schedule is 40 seconds in, at 22:14:00.

Each due time fires once in the cluster (engines sharing one store), at
the due time, and due times that passed while no engine ran are skipped."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from engine.config.schedules import Schedule
from engine.config.settings import Settings
from engine.core.engine import Engine
from engine.core.scheduler import Scheduler
from engine.core.values import JobRequest
from engine.errors import ConfigError
from engine.store import AddResult
from engine.testing import FailingStore, open_fake_engine, open_fake_store, trio_wall_clock
from protocols.lifecycle import JobState
from tests.conftest import FakeEngineOpener

#: Trio time 0 on the fake engines' wall clock, and the first due minute.
EPOCH = 1_700_000_000.0
FIRST = EPOCH + 40


def _every_minute(*, start: bool = False, name: str = "tick") -> dict[str, Schedule]:
    schedule = Schedule(
        name=name,
        cron="* * * * *",
        type="echo",
        payload={"from": name},
        batch_prefix=name,
        start=start,
    )
    return {name: schedule}


async def _sleep_until_wall(seconds: float) -> None:
    await trio.sleep_until(seconds - EPOCH)


async def _batches(engine: Engine) -> list[tuple[str, float]]:
    return [(b.batch_id, b.created_at) for b in await engine.list_batches()]


async def test_fires_at_each_due_time(
    fake_engine: FakeEngineOpener, autojump_clock: object
) -> None:
    with trio.fail_after(600):
        async with fake_engine(schedules=_every_minute()) as engine:
            await _sleep_until_wall(FIRST + 120 + 30)
            assert await _batches(engine) == [
                ("tick-20231114T2214", FIRST),
                ("tick-20231114T2215", FIRST + 60),
                ("tick-20231114T2216", FIRST + 120),
            ]
            batch = await engine.get_batch("tick-20231114T2214")
            assert batch.options == {"schedule": "tick"}
            assert batch.counts.pending == 1  # start = false: nobody runs it
            jobs = (await engine.list_jobs("tick-20231114T2214")).jobs
            assert [(j.type, j.payload) for j in jobs] == [("echo", {"from": "tick"})]
            assert engine.scheduler.statistics().fired == 3


async def test_statuses_name_the_next_and_the_last_firing(
    fake_engine: FakeEngineOpener, autojump_clock: object
) -> None:
    with trio.fail_after(600):
        async with fake_engine(schedules=_every_minute()) as engine:
            [before] = await engine.scheduler.statuses()
            assert (before.name, before.cron, before.type) == ("tick", "* * * * *", "echo")
            assert (before.next_run_at, before.last_run_at) == (FIRST, None)
            await _sleep_until_wall(FIRST + 1)
            [after] = await engine.scheduler.statuses()
            assert (after.next_run_at, after.last_run_at) == (FIRST + 60, FIRST)


async def test_a_started_schedule_runs_its_batch(
    fake_engine: FakeEngineOpener, autojump_clock: object
) -> None:
    with trio.fail_after(600):
        async with fake_engine(schedules=_every_minute(start=True)) as engine:
            await _sleep_until_wall(FIRST + 5)
            batch = await engine.get_batch("tick-20231114T2214")
            assert batch.options == {"schedule": "tick", "autoStart": True}
            assert batch.counts.completed == 1
            [job] = (await engine.list_jobs(batch.batch_id)).jobs
            assert (job.state, job.result) == (JobState.COMPLETED, {"from": "tick"})


async def test_each_due_time_fires_once_among_three_engines(autojump_clock: object) -> None:
    """Three engines on one store each wake for every due time; the store
    lets exactly one of them fire it."""
    with trio.fail_after(600):
        async with (
            open_fake_store() as store,
            open_fake_engine(store=store, schedules=_every_minute()) as one,
            open_fake_engine(store=store, schedules=_every_minute()) as two,
            open_fake_engine(store=store, schedules=_every_minute()) as three,
        ):
            await _sleep_until_wall(FIRST + 4 * 60 + 30)
            ids = [batch_id for batch_id, _ in await _batches(one)]
            assert ids == [f"tick-20231114T22{m}" for m in range(14, 19)]
            statistics = [e.scheduler.statistics() for e in (one, two, three)]
            assert sum(s.fired for s in statistics) == 5
            assert sum(s.lost for s in statistics) == 10
            assert sum(s.missed for s in statistics) == 0


async def test_missed_due_times_are_not_replayed(autojump_clock: object) -> None:
    with trio.fail_after(900):
        async with open_fake_store() as store:
            async with open_fake_engine(store=store, schedules=_every_minute()) as first:
                await _sleep_until_wall(FIRST + 60 + 30)
            # No engine runs through 22:16, 22:17 and 22:18.
            await _sleep_until_wall(FIRST + 4 * 60 + 30)
            async with open_fake_engine(store=store, schedules=_every_minute()) as second:
                [status] = await second.scheduler.statuses()
                assert status.last_run_at == FIRST + 60  # cluster-wide, from the store
                await _sleep_until_wall(FIRST + 5 * 60 + 30)
                assert [batch_id for batch_id, _ in await _batches(second)] == [
                    "tick-20231114T2214",
                    "tick-20231114T2215",
                    "tick-20231114T2219",
                ]
                assert second.scheduler.statistics().fired == 1
            assert first.scheduler.statistics().fired == 2


async def test_a_store_outage_shorter_than_a_period_delays_the_firing(
    autojump_clock: object,
) -> None:
    with trio.fail_after(600):
        async with open_fake_store() as real:
            store = FailingStore(real)
            async with open_fake_engine(store=store, schedules=_every_minute()) as engine:
                await _sleep_until_wall(FIRST - 1)
                store.fail("claim_firing")
                await _sleep_until_wall(FIRST + 10)
                assert await _batches(engine) == []
                store.recover()
                await _sleep_until_wall(FIRST + 30)
                [(batch_id, created_at)] = await _batches(engine)
                assert batch_id == "tick-20231114T2214"
                assert FIRST + 10 < created_at < FIRST + 30
                # An outage past the next due time misses the firing.
                store.fail("create_batch")
                await _sleep_until_wall(FIRST + 60 + 70)
                store.recover()
                assert engine.scheduler.statistics().missed == 1
                await _sleep_until_wall(FIRST + 180 + 1)
                ids = [batch_id for batch_id, _ in await _batches(engine)]
                assert ids == [
                    "tick-20231114T2214",
                    "tick-20231114T2216",
                    "tick-20231114T2217",
                ]


async def test_a_batch_created_without_its_job_gets_it_once(autojump_clock: object) -> None:
    """The store takes the batch, then fails to add its job: the firing is
    tried again, finds the batch, and adds the job, exactly once."""
    with trio.fail_after(600):
        async with open_fake_store() as real:
            store = FailingStore(real)
            async with open_fake_engine(store=store, schedules=_every_minute()) as engine:
                await _sleep_until_wall(FIRST - 1)
                store.fail("add_jobs")
                await _sleep_until_wall(FIRST + 3)
                assert (await engine.get_batch("tick-20231114T2214")).counts.pending == 0
                store.recover()
                await _sleep_until_wall(FIRST + 30)
                jobs = (await engine.list_jobs("tick-20231114T2214")).jobs
                assert [(j.key, j.payload) for j in jobs] == [
                    ("tick-20231114T2214", {"from": "tick"})
                ]
                assert engine.scheduler.statistics().fired == 1


def test_next_due_is_strictly_after_and_in_utc() -> None:
    [schedule] = _every_minute().values()
    nightly = Schedule(name="n", cron="30 2 * * *", type="echo", batch_prefix="n")
    assert schedule.next_due(FIRST) == FIRST + 60
    assert schedule.next_due(FIRST - 0.5) == FIRST
    assert nightly.next_due(EPOCH) == 1_700_015_400.0  # 2023-11-15T02:30:00Z
    assert nightly.batch_id(1_700_015_400.0) == "n-20231115T0230"
    assert trio_wall_clock  # the fake engines' clock, which EPOCH describes


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "batchyard.toml"
    path.write_text(text)
    return path


def test_a_schedule_table_is_read(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        '[schedules.nightly]\ncron = "30 2 * * 1-5"\ntype = "echo"\n'
        'payload = {source = "s3://bucket", n = 3}\nbatch = "night"\nstart = false\n'
        '[schedules.hourly]\ncron = "0 * * * *"\ntype = "noop"\n',
    )
    schedules = Settings.load({}, config_path=path).schedules
    assert schedules == {
        "nightly": Schedule(
            name="nightly",
            cron="30 2 * * 1-5",
            type="echo",
            payload={"source": "s3://bucket", "n": 3},
            batch_prefix="night",
            start=False,
        ),
        "hourly": Schedule(name="hourly", cron="0 * * * *", type="noop", batch_prefix="hourly"),
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('cron = "61 * * * *"\ntype = "echo"', "cron='61 * * * *' is not a cron expression"),
        ('cron = "* * * * * *"\ntype = "echo"', "expected five fields"),
        ('cron = "0 0 30 2 *"\ntype = "echo"', "is not a cron expression"),
        ('type = "echo"', "lacks the key 'cron'"),
        ('cron = "* * * * *"\ntype = ""', "type='' is not a non-empty string"),
        ('cron = "* * * * *"\ntype = "echo"\nstart = 1', "start=1 is not a boolean"),
        ('cron = "* * * * *"\ntype = "echo"\nbatch = "a b"', "batch='a b' is not a batch id"),
        ('cron = "* * * * *"\ntype = "echo"\nevery = 1', "unknown key 'every'"),
    ],
)
def test_an_invalid_schedule_is_one_line_naming_it(
    tmp_path: Path, table: str, message: str
) -> None:
    path = _config(tmp_path, f"[schedules.nightly]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        Settings.load({}, config_path=path)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: [schedules.nightly]")
    assert message in text


async def test_an_unknown_job_type_stops_the_engine(
    fake_engine: FakeEngineOpener, autojump_clock: object
) -> None:
    schedule = Schedule(name="nightly", cron="* * * * *", type="nosuch", batch_prefix="n")
    with pytest.raises(ConfigError, match=r"^\[schedules\.nightly\] type='nosuch' is not a"):
        async with fake_engine(schedules={"nightly": schedule}):
            pass


async def _never(batch_id: str, jobs: Sequence[JobRequest]) -> AddResult:
    raise AssertionError(f"no batch was created before: {batch_id}")


async def test_a_wall_clock_jump_fires_the_current_due_time_only(autojump_clock: object) -> None:
    """The wall clock is set ten minutes ahead while the scheduler sleeps:
    it wakes within ``_LONGEST_SLEEP``, fires the latest due time that
    passed, and makes up none of the nine before it."""
    offset = [0.0]
    created: list[tuple[str | None, float]] = []

    def clock() -> float:
        return trio_wall_clock() + offset[0]

    async def create(
        batch_id: str | None, type: str, jobs: Sequence[JobRequest], options: Any
    ) -> tuple[str, AddResult]:
        created.append((batch_id, clock()))
        await trio.lowlevel.checkpoint()
        return batch_id or "", AddResult(enqueued=1, duplicates=0, job_ids=("j",))

    with trio.fail_after(600):
        async with open_fake_store() as store, trio.open_nursery() as nursery:
            scheduler = Scheduler(
                _every_minute(),
                store=store,
                create=create,
                add=_never,
                clock=clock,
                draining=lambda: False,
            )
            nursery.start_soon(scheduler.serve)
            await _sleep_until_wall(FIRST + 1)
            offset[0] = 600.0  # wall time is now 22:24:01
            await _sleep_until_wall(FIRST + 120)
            nursery.cancel_scope.cancel()
    assert [batch_id for batch_id, _ in created] == [
        "tick-20231114T2214",
        "tick-20231114T2224",
        "tick-20231114T2225",
    ]
    # The jump is noticed at the end of a sleep of at most 30 seconds.
    assert FIRST + 600 < created[1][1] <= FIRST + 600 + 30
