"""Opening one SQLite file from several connections at once: an opener waits
for the others' locks up to its busy timeout, also where SQLite itself would
fail at once (the notes of ``engine.store._sqlite_connection``).
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import StoreUnavailable
from engine.store._sqlite_connection import connect
from tests.store.helpers import DEADLINE

BUSY_TIMEOUT = 5.0

#: Processes opening the same new file at once, how many new files, and
#: how long before the instant they open each one it is set. Without the
#: retry of the switch to WAL, a round fails from under one time in a hundred
#: to one in three, as the machine's load goes: a stress check, while the tests
#: above recreate the lock that SQLite does not wait for.
PROCESSES = 4
ROUNDS = 40
LEAD = 0.005


def hold_write_lock(path: str) -> sqlite3.Connection:
    """A connection to ``path`` (new: a rollback journal) holding its write lock."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_new_file_opens_once_another_writer_is_done(tmp_path: Path) -> None:
    """Another connection holds the write lock of a file still in rollback
    mode: SQLite fails the switch to WAL at once, however long the busy
    timeout; ``connect`` waits until the lock is free."""
    path = str(tmp_path / "new.db")
    holder = hold_write_lock(path)
    release = threading.Timer(0.2, holder.execute, ("COMMIT",))
    release.start()
    try:
        conn = connect(path, BUSY_TIMEOUT)
    finally:
        release.join()
        holder.close()
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
    finally:
        conn.close()


def test_a_new_file_locked_beyond_the_busy_timeout_is_unavailable(tmp_path: Path) -> None:
    path = str(tmp_path / "new.db")
    holder = hold_write_lock(path)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked"):
            connect(path, 0.3)
        waited = time.monotonic() - started
    finally:
        holder.close()
    assert 0.3 <= waited < 0.3 + 2


def _open_each_file_at_once(directory: str, barrier: Any, start: Any, index: int) -> None:
    """One process's part: open ``ROUNDS`` new files, each at the instant
    when every other process opens it too; write down what failed."""
    failures = []
    for round_ in range(ROUNDS):
        # A barrier lets its processes go one by one: the first one sets an
        # instant a little later, at which they all open the file.
        if index == 0:
            start.value = time.time() + LEAD
        barrier.wait()
        time.sleep(max(0.0, start.value - time.time()))
        try:
            connect(f"{directory}/{round_}.db", BUSY_TIMEOUT).close()
        except StoreUnavailable as exc:
            failures.append(f"round {round_}: {exc}\n")
        barrier.wait()  # every process has read the instant before the next is set
    Path(directory, f"failures-{index}.txt").write_text("".join(failures))


def test_processes_opening_a_new_file_at_once_all_open_it(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES, timeout=DEADLINE)
    start = context.Value("d", 0.0)
    processes = [
        context.Process(
            target=_open_each_file_at_once, args=(str(tmp_path), barrier, start, index)
        )
        for index in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(DEADLINE)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    failures = [(tmp_path / f"failures-{i}.txt").read_text() for i in range(PROCESSES)]
    assert "".join(failures) == ""
