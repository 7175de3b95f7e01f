"""What the SQLite store does beyond the contract: its file, its lock, its thread.

The contract itself is ``test_store.py``, run against every backend.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from engine.errors import StoreUnavailable
from engine.store import NewJob, RunRecord, open_store
from engine.store.sqlite import SqliteStore, open_sqlite_store
from tests.store.helpers import DEADLINE, LEASE, FakeClock, all_jobs, jobs_of


@pytest.fixture
async def store(db_path: str, clock: FakeClock) -> AsyncIterator[SqliteStore]:
    async with open_sqlite_store(db_path, clock=clock) as store:
        yield store


async def pragma(store: SqliteStore, statement: str) -> Any:
    # Fault injection: PRAGMAs such as max_page_count hold per connection, so
    # they must go to the store's own one. Only call it while the store is idle.
    conn = store._conn
    assert conn is not None
    row = await trio.to_thread.run_sync(lambda: conn.execute(f"PRAGMA {statement}").fetchone())
    return row[0]


async def test_full_disk(
    store: SqliteStore, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        kept = (await store.add_jobs("b", jobs_of(10))).job_ids
        pages = await pragma(store, "page_count")
        assert await pragma(store, f"max_page_count = {pages}") == pages
        big = [NewJob(type="echo", payload="x" * 2000) for _ in range(200)]
        with (
            caplog.at_level(logging.ERROR, logger="batchyard.store"),
            pytest.raises(StoreUnavailable, match="database or disk is full"),
        ):
            await store.add_jobs("b", big)
        assert [r.name for r in caplog.records] == ["batchyard.store"]
        assert [j.job_id for j in await all_jobs(store, "b")] == list(kept)

        await pragma(store, "max_page_count = 1073741823")
        assert (await store.add_jobs("b", big)).enqueued == 200
        assert len(await store.claim_jobs("b", 300, owner="e", lease_seconds=LEASE)) == 210


async def test_locked_database(db_path: str, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        async with open_sqlite_store(db_path, clock=clock, busy_timeout_seconds=0.05) as store:
            await store.create_batch("b", "echo")
            other = sqlite3.connect(db_path, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                with pytest.raises(StoreUnavailable, match="locked"):
                    await store.add_jobs("b", jobs_of(1))
                assert (await store.counts("b")).total == 0  # readers are not blocked
                other.execute("ROLLBACK")
            finally:
                other.close()
            assert (await store.add_jobs("b", jobs_of(1))).enqueued == 1


async def test_a_write_holds_the_write_lock_throughout(db_path: str, clock: FakeClock) -> None:
    """Writes begin IMMEDIATE: no other connection writes between their reads and writes."""
    with trio.fail_after(DEADLINE):
        async with (
            open_sqlite_store(db_path, clock=clock) as one,
            open_sqlite_store(db_path, clock=FakeClock(), busy_timeout_seconds=0.05) as two,
        ):
            await one.create_batch("b", "echo")
            await one.add_jobs("b", jobs_of(2))
            entered, proceed = threading.Event(), threading.Event()
            clock.hold(entered, proceed)  # stops ``one`` inside its transaction
            async with trio.open_nursery() as nursery:
                nursery.start_soon(one.add_jobs, "b", jobs_of(3))
                await trio.to_thread.run_sync(entered.wait, DEADLINE)
                with pytest.raises(StoreUnavailable, match="locked"):
                    await two.claim_jobs("b", 5, owner="e", lease_seconds=LEASE)
                assert (await two.counts("b")).pending == 2  # readers go on
                proceed.set()
            assert len(await two.claim_jobs("b", 9, owner="e", lease_seconds=LEASE)) == 5


async def test_cannot_open(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database, and it is long enough to have a header" * 4)
    with trio.fail_after(DEADLINE):
        for path in [str(junk), str(tmp_path / "missing" / "dir" / "x.db")]:
            with pytest.raises(StoreUnavailable):
                async with open_sqlite_store(path):
                    pass


async def test_reopen_keeps_everything(db_path: str, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        async with open_sqlite_store(db_path, clock=clock) as store:
            await store.create_batch("b", "echo")
            await store.add_jobs("b", jobs_of(3, key=None))
            await store.acquire_run("b", "e", LEASE)
        async with open_sqlite_store(db_path, clock=clock) as store:
            assert (await store.counts("b")).pending == 3
            assert await store.runs() == [
                RunRecord(batch_id="b", owner="e", expires_at=clock.now + LEASE)
            ]
            await store.ping()


#: The schema of a file made before run ownership and self-starting batches.
_OLD_SCHEMA = """
CREATE TABLE batches (batch_id TEXT PRIMARY KEY, type TEXT NOT NULL, created_at REAL NOT NULL,
    options TEXT NOT NULL);
CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL UNIQUE,
    batch_id TEXT NOT NULL, type TEXT NOT NULL, state TEXT NOT NULL, payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL, key TEXT,
    priority INTEGER NOT NULL, result TEXT, error TEXT, traceback TEXT,
    created_at REAL NOT NULL, available_at REAL NOT NULL, lease_owner TEXT, lease_expires REAL);
CREATE TABLE running (batch_id TEXT PRIMARY KEY, owner TEXT NOT NULL, since REAL NOT NULL);
INSERT INTO batches VALUES ('flow', 'echo', 1.0, '{"after": ["plain"]}');
INSERT INTO batches VALUES ('plain', 'echo', 2.0, '{"autoStart": false}');
INSERT INTO jobs (job_id, batch_id, type, state, payload, max_attempts, priority, created_at,
    available_at) VALUES ('j1', 'flow', 'echo', 'pending', 'null', 1, 0, 1.0, 1.0),
    ('j2', 'plain', 'echo', 'pending', 'null', 1, 0, 2.0, 2.0);
INSERT INTO running VALUES ('plain', 'engine-old', 5.0);
"""


async def test_an_older_file_is_migrated(db_path: str, clock: FakeClock) -> None:
    """Its running marks become handed-over runs; its batches' flags are set."""
    old = sqlite3.connect(db_path)
    old.executescript(_OLD_SCHEMA)
    old.close()
    with trio.fail_after(DEADLINE):
        for _ in range(2):  # and opening it again changes nothing
            async with open_sqlite_store(db_path, clock=clock) as store:
                assert await store.runs() == [
                    RunRecord(batch_id="plain", owner=None, expires_at=5.0)
                ]
                startable = await store.startable_batches(9, any_batch=False)
                assert [b.batch_id for b in startable] == ["flow"]
                startable = await store.startable_batches(9, any_batch=True)
                assert [b.batch_id for b in startable] == ["flow", "plain"]
        async with open_sqlite_store(db_path, clock=clock) as store:
            assert await store.acquire_run("plain", "e", LEASE) == "e"
            assert (await store.get_batch("plain")).run_owner == "e"


async def test_rate_takes_of_an_older_file_get_holders(db_path: str, clock: FakeClock) -> None:
    """A window's takes from before takes had holders still count."""
    old = sqlite3.connect(db_path)
    old.executescript(
        "CREATE TABLE rate_takes (key TEXT NOT NULL, at REAL NOT NULL, cost REAL NOT NULL);"
        f"INSERT INTO rate_takes VALUES ('embed', {clock.now}, 1);"
    )
    old.close()
    with trio.fail_after(DEADLINE):
        for _ in range(2):  # and opening it again changes nothing
            async with open_sqlite_store(db_path, clock=clock) as store:
                assert await store.take_rate("embed", 3, 10.0, 1, holder="j") == 0.0
        async with open_sqlite_store(db_path, clock=clock) as store:
            await store.delay_rate("embed", {"j": 2.0})
            assert await store.take_rate("embed", 3, 10.0, 1) == 10.0


async def test_cancelled_during_transaction_completes(
    store: SqliteStore, clock: FakeClock
) -> None:
    """Cancelled once its transaction has begun in the worker thread, a
    write still commits and returns."""
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        entered, proceed = threading.Event(), threading.Event()
        added: list[str] = []

        async def add() -> None:
            added.extend((await store.add_jobs("b", jobs_of(3))).job_ids)

        clock.hold(entered, proceed)
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(add)
                await trio.to_thread.run_sync(entered.wait, DEADLINE)
                scope.cancel()
                proceed.set()
        assert len(added) == 3
        assert (await store.counts("b")).pending == 3


async def test_cancelled_while_waiting_does_nothing(store: SqliteStore, clock: FakeClock) -> None:
    with trio.fail_after(DEADLINE):
        await store.create_batch("b", "echo")
        entered, proceed = threading.Event(), threading.Event()

        async def cancel_once_blocked(scope: trio.CancelScope) -> None:
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()

        clock.hold(entered, proceed)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.add_jobs, "b", jobs_of(1))
            await trio.to_thread.run_sync(entered.wait, DEADLINE)
            with trio.CancelScope() as scope:
                # The first add_jobs holds the connection, so this one waits.
                nursery.start_soon(cancel_once_blocked, scope)
                await store.add_jobs("b", jobs_of(5))
            assert scope.cancelled_caught
            proceed.set()
        assert (await store.counts("b")).pending == 1


async def test_aclose_is_idempotent_and_final(db_path: str) -> None:
    with trio.fail_after(DEADLINE):
        async with open_sqlite_store(db_path) as store:
            await store.ping()
            await store.aclose()
            await store.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await store.ping()
            with pytest.raises(trio.ClosedResourceError):
                await store.create_batch("b", "echo")


async def test_open_store_relative_and_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "abs").mkdir()
    with trio.fail_after(DEADLINE):
        for url, file in [
            ("sqlite:///rel.db", tmp_path / "rel.db"),
            (f"sqlite:///{tmp_path}/abs/abs.db", tmp_path / "abs" / "abs.db"),
        ]:
            async with open_store(url) as store:
                await store.create_batch("b", "echo")
            assert file.exists()
            async with open_store(url) as store:
                assert (await store.get_batch("b")).type == "echo"


async def test_open_store_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with trio.fail_after(DEADLINE):
        async with open_store("sqlite:///:memory:") as store:
            await store.create_batch("b", "echo")
            assert (await store.add_jobs("b", jobs_of(2))).enqueued == 2
        async with open_store("sqlite:///:memory:") as store:
            assert await store.list_batches() == []
    assert not await trio.Path(tmp_path, ":memory:").exists()
