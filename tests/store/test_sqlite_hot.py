"""The SQLite store's hot steps (claims and outcomes) in the Trio thread:
only when they need not wait, and never checkpointing there."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest
import trio
import trio.testing

from engine.store import _sqlite_connection, sqlite
from engine.store.records import Claim, Complete
from engine.store.sqlite import open_sqlite_store
from tests.store.helpers import DEADLINE, LEASE, FakeClock, jobs_of


async def test_a_hot_step_waits_for_a_locked_file_in_the_worker_thread(
    db_path: str, clock: FakeClock
) -> None:
    """Another connection holds the write lock: the claim waits for it
    without blocking the Trio thread (which releases the lock, before the
    busy timeout), and claims once it is free."""
    with trio.fail_after(DEADLINE):
        async with open_sqlite_store(db_path, clock=clock, busy_timeout_seconds=DEADLINE) as store:
            await store.create_batch("b", "echo")
            await store.add_jobs("b", jobs_of(2))
            other = sqlite3.connect(db_path, isolation_level=None)
            claimed = []

            async def claim() -> None:
                claimed.extend(await store.claim_jobs("b", 5, owner="e", lease_seconds=LEASE))

            try:
                other.execute("BEGIN IMMEDIATE")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(claim)
                    await trio.testing.wait_all_tasks_blocked()
                    await trio.sleep(0.05)  # the Trio thread runs meanwhile
                    assert claimed == []
                    other.execute("ROLLBACK")
            finally:
                other.close()
            assert len(claimed) == 2


async def test_hot_steps_checkpoint_the_log_in_the_worker_thread(
    db_path: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hot commits do not checkpoint, so every few rows changed a
    checkpoint runs first (in the worker thread): the log stays short."""
    monkeypatch.setattr(sqlite, "_CHECKPOINT_ROWS", 20)
    checkpoints = []
    checkpoint = _sqlite_connection.checkpoint

    def counted(conn: sqlite3.Connection) -> None:
        checkpoints.append(threading.current_thread() is threading.main_thread())
        checkpoint(conn)

    monkeypatch.setattr(_sqlite_connection, "checkpoint", counted)
    with trio.fail_after(DEADLINE):
        async with open_sqlite_store(db_path, clock=clock) as store:
            await store.create_batch("b", "echo")
            await store.add_jobs("b", jobs_of(60))
            held = await store.claim_jobs("b", 1, owner="e", lease_seconds=LEASE)
            for _ in range(59):
                claim = Claim(batch_id="b", limit=1, lease_seconds=LEASE)
                outcomes = [Complete(job_id=held[0].job_id)]
                held = (await store.apply_and_claim(outcomes, owner="e", claim=claim)).claimed
            assert (await store.counts("b")).completed == 59
            other = sqlite3.connect(db_path, isolation_level=None)
            try:
                _, log_frames, _ = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                other.close()
    assert len(checkpoints) >= 59 * 2 // 20  # each step changes two jobs, at least
    assert not any(checkpoints)  # never in the Trio thread
    assert log_frames < 60  # each of the 60 commits wrote at least one frame


async def test_the_first_write_after_a_checkpoint_is_made_in_the_worker_thread(
    db_path: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write after a checkpoint restarts the log and syncs its header:
    it is never a hot step in the Trio thread; the ones after it are."""
    monkeypatch.setattr(sqlite, "_CHECKPOINT_COMMITS", 5)
    happened: list[str] = []

    def spy(name: str, original: Any, *, writes_only: bool = False) -> Any:
        def spied(conn: sqlite3.Connection, *args: Any, **kwargs: Any) -> Any:
            if not writes_only or kwargs.get("write"):
                happened.append(name)
            return original(conn, *args, **kwargs)

        return spied

    connection = _sqlite_connection
    monkeypatch.setattr(connection, "checkpoint", spy("checkpoint", connection.checkpoint))
    monkeypatch.setattr(connection, "transaction_now", spy("hot", connection.transaction_now))
    monkeypatch.setattr(
        connection, "transaction", spy("worker", connection.transaction, writes_only=True)
    )
    with trio.fail_after(DEADLINE):
        async with open_sqlite_store(db_path, clock=clock) as store:
            await store.create_batch("b", "echo")
            await store.add_jobs("b", jobs_of(30))
            happened.clear()
            held = await store.claim_jobs("b", 1, owner="e", lease_seconds=LEASE)
            for _ in range(29):
                claim = Claim(batch_id="b", limit=1, lease_seconds=LEASE)
                outcomes = [Complete(job_id=held[0].job_id)]
                held = (await store.apply_and_claim(outcomes, owner="e", claim=claim)).claimed
    assert happened.count("checkpoint") >= 5
    assert happened.count("hot") >= 15
    after_checkpoints = [
        happened[i + 1] for i, name in enumerate(happened[:-1]) if name == "checkpoint"
    ]
    assert set(after_checkpoints) == {"worker"}
