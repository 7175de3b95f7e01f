"""The SQLite store's connection: opening the file, one transaction, and the
one place where SQLite's failures become ``StoreUnavailable``.

``engine.store.sqlite`` opens the connection with ``connect`` and runs each
method's body (``engine.store._sqlite_ops`` and the other private modules)
inside ``transaction``, under ``unavailable_on_sqlite_errors``, in its worker
thread, or a hot step inside ``transaction_now`` in the Trio thread. Nothing
here knows about Trio.

Design notes
------------
Opening a brand-new file while other processes open it too: SQLite waits
on the busy handler (the busy timeout) for most locks, but not for every
one. ``PRAGMA journal_mode = WAL`` on a file still in rollback mode reads
the file's header in a read transaction, then upgrades that transaction to
write the header's new version bytes; an upgrade from a read transaction
never waits (two readers upgrading would deadlock), so if another
connection holds the write lock at that instant (another opener switching
the same new file, or any writer while it is still in rollback mode) the
pragma fails at once with ``SQLITE_BUSY``. ``connect`` therefore retries the switch itself, pausing
a little longer each time, until the busy timeout has passed since its
first try (the busy handler's own waits within a try included), and only
then gives up; the file is in WAL mode as soon as one opener has switched
it, so a retry usually finds nothing left to do. The other opening steps
begin their transactions with nothing held, so SQLite's busy handler
covers them.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator

from engine.errors import StoreUnavailable
from engine.store import _sqlite_limits, _sqlite_schedules
from engine.store._sqlite_schema import create_schema

__all__ = [
    "Busy",
    "checkpoint",
    "connect",
    "in_wal_mode",
    "set_busy_timeout",
    "transaction",
    "transaction_now",
    "unavailable_on_sqlite_errors",
]

_log = logging.getLogger("batchyard.store")

#: Errors that mean a bug in the store's SQL, not an unavailable database.
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError)

#: The first and the longest pause between two tries of the switch to WAL.
_FIRST_PAUSE_SECONDS = 0.001
_LONGEST_PAUSE_SECONDS = 0.05


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite failed because another connection holds a lock."""
    return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # extended codes too


@contextlib.contextmanager
def unavailable_on_sqlite_errors(path: str) -> Iterator[None]:
    """The one place where SQLite's failures become ``StoreUnavailable``."""
    try:
        yield
    except _BUGS:
        raise
    except sqlite3.DatabaseError as exc:
        _log.error("sqlite store %r unavailable: %s", path, exc)
        raise StoreUnavailable(f"sqlite store {path!r}: {exc}") from exc


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool) -> Iterator[None]:
    """One transaction, committed at the end and rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # Some errors (a full disk among them) make SQLite roll back by itself.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class Busy(Exception):
    """Another connection holds the write lock: ``transaction_now`` began nothing."""


@contextlib.contextmanager
def transaction_now(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, begun only if the write lock is free at once
    (else ``Busy``, nothing done; the caller has set the busy timeout to 0
    with ``set_busy_timeout``); rolled back on any exception."""
    with contextlib.ExitStack() as begun:
        try:
            begun.enter_context(transaction(conn, write=True))
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise Busy(str(exc)) from exc
            raise
        yield


def set_busy_timeout(conn: sqlite3.Connection, seconds: float) -> None:
    """How long the connection's next statements wait for another's lock."""
    conn.execute(f"PRAGMA busy_timeout = {round(seconds * 1000)}")


def in_wal_mode(conn: sqlite3.Connection) -> bool:
    """Whether the file's journal is the write-ahead log (a ``:memory:``
    database, or a file system without shared memory, keeps a rollback
    journal, whose commits wait for the disk)."""
    mode: str = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return mode.lower() == "wal"


def checkpoint(conn: sqlite3.Connection) -> None:
    """Copy what the write-ahead log holds to the database file, as far as
    no reader needs it (``PASSIVE``: never waits for a lock)."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_seconds: float) -> None:
    """Set the journal mode to WAL, retrying the failures SQLite does not
    wait out itself until ``busy_timeout_seconds`` have passed (module
    notes); the connection's busy timeout is back as it was on return.

    Raises:
        sqlite3.OperationalError: still busy after the busy timeout, or
            any other failure, at once.
    """
    deadline = time.monotonic() + busy_timeout_seconds
    pause = _FIRST_PAUSE_SECONDS
    try:
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(2 * pause, _LONGEST_PAUSE_SECONDS)
            # The busy handler's wait within the next try ends by the deadline
            # too (at least a millisecond: 0 would turn the handler off).
            left = max(1, round((deadline - time.monotonic()) * 1000))
            conn.execute(f"PRAGMA busy_timeout = {left}")
    finally:
        set_busy_timeout(conn, busy_timeout_seconds)


def connect(path: str, busy_timeout_seconds: float) -> sqlite3.Connection:
    """Open ``path`` in WAL mode and create the schema if it is missing;
    other processes may open the same file at the same time (module notes).

    Raises:
        StoreUnavailable: the file cannot be opened, is not a database, or
            stayed locked for longer than the busy timeout.
    """
    with unavailable_on_sqlite_errors(path):
        conn = sqlite3.connect(
            path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )
        try:
            _switch_to_wal(conn, busy_timeout_seconds)
            conn.execute("PRAGMA synchronous = NORMAL")
            # The store checkpoints the write-ahead log itself, in its worker
            # thread (``engine.store.sqlite``), never at a commit.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            # A small page cache (256 KiB, not SQLite's 2 MiB): the engine's
            # memory stays flat however many jobs wait in the file, and the
            # hot path's pages are few and recent (the OS caches the rest).
            conn.execute("PRAGMA cache_size = -256")
            create_schema(conn)
            _sqlite_limits.create_limit_tables(conn)
            _sqlite_schedules.create_schedule_table(conn)
        except BaseException:
            conn.close()
            raise
    return conn
