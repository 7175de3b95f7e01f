"""The embedded store: batches and jobs in one SQLite file.

Design notes
------------
One connection, used by one thread at a time. ``sqlite3`` calls block, so
every method but the hot steps (below) runs its whole transaction in a
worker thread (``trio.to_thread.run_sync``) and a ``trio.Lock`` hands the
connection to one call at a time: the Trio thread does not wait on the
disk. The connection is
opened with ``check_same_thread=False`` because Trio's thread cache may run
consecutive calls on different threads; the lock is what serializes them.

Each public method is exactly one transaction. Writes start with ``BEGIN
IMMEDIATE``, taking SQLite's write lock before reading anything, so two
claimers (tasks here, or other connections to the same file) can never both
see a job as pending. Reads use a plain ``BEGIN`` so that their queries share
one snapshot. ``apply`` records a whole group of outcomes in one commit, and
``claim_jobs`` is a single ``UPDATE ... RETURNING``: the work per call is a
few statements, not one round trip per job. In WAL mode with
``synchronous=NORMAL`` a commit does not wait for an fsync (checkpoints,
and the first write after one, do),
which risks the last commits before a power cut, never consistency, and buys
thousands of commits a second.

The run's hot steps (``apply_and_claim``, ``apply``, ``claim_jobs``: a
burst's outcomes and claims) are a handful of statements on pages in
memory, and they run in the Trio thread when that cannot wait on
anything: only with the write-ahead log, only if the write lock is free
at once (another process holding it sends the step to the worker thread,
to wait there), and never as the first write after a checkpoint, which
restarts the log and syncs its header. No commit checkpoints the log
(``wal_autocheckpoint`` is 0): every ``_CHECKPOINT_ROWS`` rows or
``_CHECKPOINT_COMMITS`` writes, a write first checkpoints in the worker
thread, where the checkpoint's fsyncs are waited for. A checkpoint by
another process on the same file is not seen: the next hot step may then
sync the log's header in the Trio thread. A hot step also assumes its
pages are in memory or the OS's cache (the claim's and outcomes' pages
are few and recent). The busy timeout is 0 for a hot step (it must not
wait) and the store's for everything else; it is set only when it
changes, so a run of hot steps costs no statement for it.

Why not the worker thread, measured (served W1, no-op jobs, claims of
200): ``sqlite3`` releases the interpreter lock around every step of a
statement (every fetched row too), and each time takes it back only once
the busy Trio thread lets go of it, up to ``sys.getswitchinterval()``
later. The whole step in the worker thread served about a third of the
jobs per second. With only the two heavy statements there (the
completions' ``UPDATE`` and the claim's ``UPDATE ... RETURNING``, which
does all its writing at its first step; one hop a step, its rows fetched
in the Trio thread), the Trio thread spent a fifth less CPU per job, but
it then waited for each step's hop and stood idle half the time: about
30% fewer jobs per second than in the Trio thread, for about 10% more
CPU per job in all; a 1 ms switch interval was no better. Rows cannot
come back as one JSON text either: SQLite (3.40) writes a REAL with 15
significant digits, and timestamps need 17.

``threaded=False`` runs every call in the Trio thread instead, blocking the
loop for its few statements: for tests on trio's ``MockClock``, whose
autojump would move time on (and fire deadlines) while a worker thread works.

The bodies of the transactions and the SQL live in
``engine.store._sqlite_ops`` (the outcomes' in
``engine.store._sqlite_outcomes``), the schema in ``engine.store._sqlite_schema``,
the reads of batches and jobs in ``engine.store._sqlite_reads`` and the
cluster's methods (engine registry, run ownership, startable batches) in
``engine.store._sqlite_cluster``, the hot steps (claims and outcomes) in
``engine.store._sqlite_steps``, whose ``SqliteReads``,
``SqliteClusterMethods`` and ``SqliteSteps`` this store inherits; this module owns the
connection, the thread and the lock.

Cancellation: the worker thread is never abandoned, since that would leave
the connection in the middle of a transaction. A call cancelled while waiting
for the lock did nothing. Once its transaction has begun it runs to the end
and the call returns normally; the cancellation is delivered at the caller's
next checkpoint. Every method is therefore atomic with respect to
cancellation: it either raises ``Cancelled`` having done nothing, or returns.

Errors: an ``sqlite3`` error meaning that the database cannot do its work
right now (locked beyond the busy timeout, disk full, I/O error, corrupt
file) becomes ``StoreUnavailable`` in ``_sqlite_connection.unavailable_on_sqlite_errors``
and nowhere else; by then the transaction has been rolled back, so nothing was
written. Errors meaning a bug here (``IntegrityError``, ``ProgrammingError``)
propagate unchanged. Calls after ``aclose`` raise
``trio.ClosedResourceError``: "you closed it" is not "it broke".
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from engine.store import _sqlite_connection as connection
from engine.store import _sqlite_ops as ops
from engine.store._sqlite_cluster import SqliteClusterMethods
from engine.store._sqlite_jobs import SqliteJobs
from engine.store._sqlite_limits import SqliteLimits
from engine.store._sqlite_reads import SqliteReads
from engine.store._sqlite_schedules import SqliteSchedules
from engine.store._sqlite_steps import SqliteSteps

if TYPE_CHECKING:
    import sqlite3

    from engine.store.records import AddResult, BatchRecord, NewJob

__all__ = ["DEFAULT_BUSY_TIMEOUT_SECONDS", "SqliteStore", "open_sqlite_store"]

_log = logging.getLogger("batchyard.store")
_T = TypeVar("_T")

#: How long a write waits for another connection's write lock before the store
#: reports itself unavailable. Our transactions take milliseconds, so a lock
#: held for seconds means a stuck process elsewhere; the engine should hear of
#: it (``StoreUnavailable``) rather than hang.
DEFAULT_BUSY_TIMEOUT_SECONDS = 5.0

#: No commit checkpoints the write-ahead log; a write first checkpoints it
#: in the worker thread once this many rows changed (triggers' included) or
#: this many writes committed since the last, whichever comes first: large
#: steps are few pages per row, small ones a few pages each, so the log
#: stays within a few MiB, near SQLite's own checkpoint size (1,000 pages).
_CHECKPOINT_ROWS = 10_000
_CHECKPOINT_COMMITS = 200

#: ``aclose`` waits for an in-flight call, which may itself wait out the busy
#: timeout; beyond that margin it gives up and leaves the connection to be
#: closed by the garbage collector once the call ends.
_CLOSE_MARGIN_SECONDS = 2.0


class SqliteStore(
    SqliteSteps, SqliteReads, SqliteJobs, SqliteClusterMethods, SqliteLimits, SqliteSchedules
):
    """``Store`` on one SQLite connection; get one from ``open_sqlite_store``.

    Every method is one transaction and atomic under cancellation (see the
    module notes). Every method raises ``StoreUnavailable`` when SQLite
    cannot do the work, having written nothing, and
    ``trio.ClosedResourceError`` once the store is closed. The hot steps
    (claims and outcomes) come from ``SqliteSteps``, the reads of
    batches and jobs from ``SqliteReads``, the cluster methods from
    ``SqliteClusterMethods``, the limit methods from ``SqliteLimits``, the
    schedule firings from ``SqliteSchedules``.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        path: str,
        clock: Callable[[], float],
        busy_timeout_seconds: float,
        threaded: bool = True,
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._clock = clock
        self._threaded = threaded
        self._close_grace = busy_timeout_seconds + _CLOSE_MARGIN_SECONDS
        self._busy_timeout = busy_timeout_seconds
        self._lock = trio.Lock()
        self._changes_checkpointed = 0  # the connection's total_changes then
        self._commits = 0  # writes since the last checkpoint
        # Hot steps only with the write-ahead log, and not as the first write
        # after a checkpoint: that one restarts the log, which syncs its
        # header (a disk wait).
        self._hot_allowed = threaded and connection.in_wal_mode(conn)
        self._log_may_restart = True
        self._waits_when_busy = True  # the busy timeout is the store's

    async def _run(
        self,
        work: Callable[[sqlite3.Connection, float], _T],
        *,
        write: bool,
        hot: bool = False,
    ) -> _T:
        """``work`` in one transaction, in the worker thread; a ``hot``
        write in the Trio thread when it need not wait (module notes)."""
        async with self._lock:
            if self._conn is None:
                raise trio.ClosedResourceError("the store is closed")
            conn = self._conn
            if not write:
                return await _call(self._threaded, self._transact, conn, work, write)
            changed = conn.total_changes - self._changes_checkpointed
            if changed >= _CHECKPOINT_ROWS or self._commits >= _CHECKPOINT_COMMITS:
                await _call(self._threaded, self._checkpoint, conn)
            self._commits += 1
            if hot and self._hot_allowed and not self._log_may_restart:
                with contextlib.suppress(connection.Busy):
                    return self._transact_now(conn, work)
            self._log_may_restart = False  # this write restarts it if need be
            return await _call(self._threaded, self._transact, conn, work, write)

    def _transact_now(
        self, conn: sqlite3.Connection, work: Callable[[sqlite3.Connection, float], _T]
    ) -> _T:
        # In the Trio thread, with nothing awaited: atomic under cancellation.
        with connection.unavailable_on_sqlite_errors(self._path):
            self._wait_when_busy(conn, wait=False)
            with connection.transaction_now(conn):
                return work(conn, self._clock())

    def _wait_when_busy(self, conn: sqlite3.Connection, *, wait: bool) -> None:
        # The busy timeout for what comes next: 0 for a hot step, which must
        # not wait, else the store's. Set only when it changes, so a run of
        # hot steps pays for no statement.
        if wait != self._waits_when_busy:
            connection.set_busy_timeout(conn, self._busy_timeout if wait else 0.0)
            self._waits_when_busy = wait

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # In the worker thread.
        with connection.unavailable_on_sqlite_errors(self._path):
            self._wait_when_busy(conn, wait=True)
            connection.checkpoint(conn)
        self._changes_checkpointed = conn.total_changes
        self._commits = 0
        self._log_may_restart = True

    def _transact(
        self,
        conn: sqlite3.Connection,
        work: Callable[[sqlite3.Connection, float], _T],
        write: bool,
    ) -> _T:
        # In the worker thread. ``now`` is read once the transaction has begun,
        # not when the call was made, so waiting for the lock does not age it.
        with connection.unavailable_on_sqlite_errors(self._path):
            self._wait_when_busy(conn, wait=True)
            with connection.transaction(conn, write=write):
                return work(conn, self._clock())

    async def create_batch(
        self, batch_id: str, type: str, options: Mapping[str, Any] | None = None
    ) -> BatchRecord:
        """Create an empty batch.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Args:
            batch_id: the new batch's id.
            type: the job type of the batch's jobs that name none.
            options: stored as given (JSON).

        Returns:
            The batch, with no jobs.

        Raises:
            BatchExists: the id is taken.
        """
        opts = dict(options or {})
        return await self._run(
            lambda conn, now: ops.create_batch(conn, now, batch_id, type, opts), write=True
        )

    async def delete_batch(self, batch_id: str) -> None:
        """Delete the batch, all its jobs and its run record, unless an
        engine's lease on the run record is live.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Raises:
            BatchNotFound: no such batch.
            BatchRunning: it runs on an engine (nothing deleted).
        """
        await self._run(lambda conn, now: ops.delete_batch(conn, now, batch_id), write=True)

    async def add_jobs(self, batch_id: str, jobs: Sequence[NewJob]) -> AddResult:
        """Add jobs, refusing (and counting) those whose key the batch holds.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Args:
            batch_id: the batch to add to.
            jobs: the jobs in the order they are handed out at equal priority;
                of a key repeated among them, the first is kept.

        Returns:
            How many were added and refused, and the ids of those added.

        Raises:
            BatchNotFound: no such batch.
            TypeError: a payload is not JSON-serialisable; nothing was added.
        """
        return await self._run(
            lambda conn, now: ops.add_jobs(conn, now, batch_id, jobs), write=True
        )

    async def retry_failed(self, batch_id: str) -> int:
        """Failed jobs back to pending, due now, with attempts and error reset.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Returns:
            How many jobs were requeued.

        Raises:
            BatchNotFound: no such batch.
        """
        return await self._run(lambda conn, now: ops.retry_failed(conn, now, batch_id), write=True)

    async def renew_leases(self, owner: str, lease_seconds: float) -> int:
        """Push the expiry of every job lease and run record ``owner`` holds
        to now + ``lease_seconds``.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Returns:
            How many job leases were renewed.
        """
        return await self._run(
            lambda conn, now: ops.renew_leases(conn, now, owner, lease_seconds), write=True
        )

    async def recover_expired_leases(self) -> int:
        """Active jobs whose lease has run out back to pending, attempt refunded.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Returns:
            How many jobs were recovered.
        """
        return await self._run(ops.recover_expired_leases, write=True)

    async def ping(self) -> None:
        """Run ``SELECT 1``.

        Cancellation: atomic: it only reads.

        Raises:
            StoreUnavailable: SQLite could not answer.
        """
        await self._run(ops.ping, write=False)

    async def aclose(self) -> None:
        """Close the connection once the call in flight, if any, has ended.

        Idempotent. Calls still waiting for the connection then raise
        ``trio.ClosedResourceError``.

        Cancellation: the store is closed even so: the wait for the call in
        flight is shielded, and bounded by the busy timeout plus a margin.
        """
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with trio.move_on_after(self._close_grace, shield=True) as scope:
            async with self._lock:
                await _call(self._threaded, conn.close)
        if scope.cancelled_caught:
            _log.warning("sqlite store %r: a call outlived aclose; not closed yet", self._path)


async def _call(threaded: bool, function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)`` in a worker thread, or here when not ``threaded``."""
    if threaded:
        return await trio.to_thread.run_sync(function, *args)
    await trio.lowlevel.checkpoint()
    return function(*args)


@contextlib.asynccontextmanager
async def open_sqlite_store(
    path: str,
    *,
    clock: Callable[[], float] = time.time,
    busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    threaded: bool = True,
) -> AsyncIterator[SqliteStore]:
    """Open (creating if need be) the SQLite store at ``path``; close it on exit.

    Cancellation: atomic while opening: cancelled, nothing is left open.

    Args:
        path: a file path, or ``":memory:"`` for a private in-memory store.
        clock: wall-clock seconds, for timestamps, delays and leases; called
            from a worker thread.
        busy_timeout_seconds: how long a write waits for another
            connection's write lock before raising ``StoreUnavailable``.
        threaded: run SQLite in a worker thread (False: in the Trio thread,
            for tests on a mock clock; see the module notes).

    Yields:
        The open store.

    Raises:
        StoreUnavailable: the file cannot be opened or is not a database.
    """
    conn = await _call(threaded, connection.connect, path, busy_timeout_seconds)
    store = SqliteStore(
        conn,
        path=path,
        clock=clock,
        busy_timeout_seconds=busy_timeout_seconds,
        threaded=threaded,
    )
    try:
        yield store
    finally:
        await store.aclose()
