"""The distributed store: batches and jobs in one Redis database, on coredis.

Design notes
------------
coredis runs on anyio, so on Trio: a client is an async context manager that
owns its connection pool's tasks, and ``open_redis_store`` holds it open for
the life of the store. Every method is one round trip: one Lua script from
``engine.store._redis_scripts`` (``_redis_layout`` documents the keys), so that a claim
of N jobs, the outcomes of a burst or an add of many jobs is one atomic step
on the server, whatever N. The reads of batches and jobs come from
``RedisReads`` (``engine.store._redis_reads``), the outcomes of a burst
from ``RedisOutcomes`` (``engine.store._redis_outcomes``), the cluster's methods
(engine registry, run ownership, startable batches) with their scripts
from ``RedisClusterMethods`` (``engine.store._redis_cluster``). Arguments are
validated and encoded (``engine.store._redis_values``) before anything is
sent, so a script never stops half-way on bad input.

Cancellation: each call but ``ping`` (which writes nothing) is shielded from
cancellation and bounded instead by the connection's timeouts
(``CONNECT_TIMEOUT_SECONDS`` to connect and to take a connection from the
pool, ``_redis_pool.SlotKeepingPool``; ``COMMAND_TIMEOUT_SECONDS`` for a
reply), which coredis applies on Trio too: a server that stops answering
without closing (a cut link) makes a call raise ``StoreUnavailable``. A
script that reached Redis runs to the end there whatever happens to the
caller, so abandoning the reply would leave the caller not knowing what was
written; shielded, a call either returns or raises, and a cancellation is
delivered at the caller's next checkpoint, as with the SQLite store.

Errors: coredis's errors become ``StoreUnavailable`` (the server cannot be
reached, is loading, is read-only or out of memory) or ``StoreError`` (it
refused a command) in ``_redis_errors.translate_redis_errors`` and nowhere else. Unlike
SQLite, a connection lost after a script was sent leaves it unknown whether
the script ran (it ran entirely or not at all): the jobs of a claim lost
that way are handed out by the owner's next claim of the batch (the claim
carries a token, kept until a claim returns), and outcomes applied twice
are skipped the second time. coredis retries nothing by itself (``NoRetryPolicy``), so
no script ever runs twice without the caller asking. Calls after ``aclose``
raise ``trio.ClosedResourceError``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import coredis
import trio
from coredis.retry import NoRetryPolicy

from engine.errors import BatchExists, BatchNotFound, BatchRunning
from engine.store import _json
from engine.store._redis_cluster import CLUSTER_SCRIPTS, RedisClusterMethods
from engine.store._redis_errors import checked_location, sole_exception, translate_redis_errors
from engine.store._redis_events import RedisEventLog, RedisEventMethods
from engine.store._redis_jobs import JOB_SCRIPTS, RedisJobs
from engine.store._redis_limits import LIMIT_SCRIPTS, RedisLimits
from engine.store._redis_outcomes import RedisOutcomes
from engine.store._redis_pool import SlotKeepingPool
from engine.store._redis_reads import RedisReads
from engine.store._redis_schedules import SCHEDULE_SCRIPTS, RedisSchedules
from engine.store._redis_scripts import SCRIPTS
from engine.store._redis_values import job_record, new_job_args, number
from engine.store.records import AddResult, BatchRecord, Claim, JobRecord, NewJob, starts_by_itself

if TYPE_CHECKING:
    from coredis.commands import Script

__all__ = ["COMMAND_TIMEOUT_SECONDS", "CONNECT_TIMEOUT_SECONDS", "RedisStore", "open_redis_store"]

#: How long opening a connection may take before the store reports itself
#: unavailable. A Redis server on a reachable host accepts in milliseconds.
CONNECT_TIMEOUT_SECONDS = 3.0

#: How long a reply may take. Scripts here take milliseconds; deleting a batch
#: of a million jobs takes about a second. Beyond this the server is stuck or
#: gone, and the engine should hear of it rather than hang.
COMMAND_TIMEOUT_SECONDS = 10.0


class RedisStore(
    RedisReads,
    RedisOutcomes,
    RedisJobs,
    RedisClusterMethods,
    RedisLimits,
    RedisSchedules,
    RedisEventMethods,
):
    """``Store`` and ``EventLog`` on one Redis database; get one from
    ``open_redis_store``.

    Every method is one script, atomic on the server, and (but ``ping``)
    shielded from cancellation (see the module notes). Every method raises
    ``StoreUnavailable`` when Redis cannot be reached and
    ``trio.ClosedResourceError`` once the store is closed. The reads of
    batches and jobs come from ``RedisReads``, ``apply`` and
    ``apply_and_claim`` from ``RedisOutcomes``, the cluster methods from
    ``RedisClusterMethods``, the limit methods from
    ``RedisLimits`` (on Redis's clock unless ``limit_clock`` is given), the
    schedule firings from ``RedisSchedules``, the event log's from
    ``RedisEventMethods``.
    """

    def __init__(
        self,
        client: coredis.Redis[str],
        *,
        where: str,
        clock: Callable[[], float],
        limit_clock: Callable[[], float] | None = None,
    ):
        self._client: coredis.Redis[str] | None = client
        self._where = where
        self._clock = clock
        self._limit_clock = limit_clock
        self._scripts: dict[str, Script[str]] = {
            name: client.register_script(source)
            for name, source in {
                **SCRIPTS,
                **CLUSTER_SCRIPTS,
                **LIMIT_SCRIPTS,
                **JOB_SCRIPTS,
                **SCHEDULE_SCRIPTS,
            }.items()
        }
        self._events = RedisEventLog(client, where=where)
        # (batch id, owner) -> the token of a claim that raised instead of
        # returning: it may have claimed jobs whose ids were lost with its reply.
        self._unanswered_claims: dict[tuple[str, str], str] = {}

    async def _run(self, script: str, *args: str | int) -> Any:
        if self._client is None:
            raise trio.ClosedResourceError("the store is closed")
        with translate_redis_errors(self._where), trio.CancelScope(shield=True):
            return await self._scripts[script](args=args)

    async def create_batch(
        self, batch_id: str, type: str, options: Mapping[str, Any] | None = None
    ) -> BatchRecord:
        """Create an empty batch.

        Cancellation: shielded: it returns or raises, never half-done.

        Args:
            batch_id: the new batch's id.
            type: the job type of the batch's jobs that name none.
            options: stored as given (JSON).

        Returns:
            The batch, with no jobs.

        Raises:
            BatchExists: the id is taken.
        """
        opts, now = dict(options or {}), self._clock()
        args = (batch_id, type, number(now), _json.dump(opts), int(starts_by_itself(opts)))
        if not await self._run("create_batch", *args):
            raise BatchExists(f"batch {batch_id!r} already exists")
        return BatchRecord(batch_id=batch_id, type=type, created_at=now, options=opts)

    async def delete_batch(self, batch_id: str) -> None:
        """Delete the batch, all its jobs and its run record, unless an
        engine's lease on the run record is live.

        Cancellation: shielded: it returns or raises, never half-done.

        Raises:
            BatchNotFound: no such batch.
            BatchRunning: it runs on an engine (nothing deleted).
        """
        deleted = await self._run("delete_batch", batch_id, number(self._clock()))
        if deleted == 0:
            raise BatchNotFound(f"no batch {batch_id!r}")
        if deleted != 1:  # the owner's name
            raise BatchRunning(f"batch {batch_id!r} is running on engine {deleted!r}")

    async def add_jobs(self, batch_id: str, jobs: Sequence[NewJob]) -> AddResult:
        """Add jobs, refusing (and counting) those whose key the batch holds.

        Cancellation: shielded: it returns or raises, never half-done.

        Args:
            batch_id: the batch to add to.
            jobs: the jobs in the order they are handed out at equal priority;
                of a key repeated among them, the first is kept.

        Returns:
            How many were added and refused, and the ids of those added.

        Raises:
            BatchNotFound: no such batch.
            TypeError: a payload is not JSON-serialisable; nothing was added.
            OverflowError: a priority does not fit in 64 bits; nothing was added.
        """
        now = self._clock()
        args: list[str | int] = [batch_id, number(now)]
        for job in jobs:
            args += new_job_args(job, now)
        added = await self._run("add_jobs", *args)
        if added is None:
            raise BatchNotFound(f"no batch {batch_id!r}")
        job_ids = tuple(added)
        return AddResult(
            enqueued=len(job_ids), duplicates=len(jobs) - len(job_ids), job_ids=job_ids
        )

    async def claim_jobs(
        self, batch_id: str, limit: int, *, owner: str, lease_seconds: float
    ) -> list[JobRecord]:
        """Up to ``limit`` due pending jobs, made active under ``owner``'s lease.

        Cancellation: shielded: it returns or raises, never half-done.

        Args:
            batch_id: the batch to claim from (an unknown batch has no jobs).
            limit: the most jobs to claim.
            owner: who holds the leases.
            lease_seconds: how long the leases last unless renewed.

        Returns:
            The jobs, highest priority first and then oldest first, each with
            its new attempt counted. After a claim for the same batch and
            owner that raised (its reply lost, the script maybe run), first
            the jobs that claim took and the owner still holds, renewed.
        """
        if limit <= 0:
            return []
        claim = Claim(batch_id=batch_id, limit=limit, lease_seconds=lease_seconds)
        rows = await self._claiming("claim_jobs", [], owner, claim)
        return [job_record(row) for row in rows]

    async def _claiming(
        self, script: str, before: Sequence[str | int], owner: str, claim: Claim
    ) -> Any:
        """Run ``script`` with ``before`` then the claim's arguments (with
        ``before``'s length first, unless it is empty), under the token of
        the owner's claim of the batch that raised, if any (so its jobs are
        handed out first), keeping this one's when this one raises. The
        claim's limit is positive."""
        now = self._clock()
        expires = number(now + claim.lease_seconds)
        asked = (claim.batch_id, owner)
        token = self._unanswered_claims.pop(asked, None) or uuid.uuid4().hex
        args: list[str | int] = [claim.batch_id, claim.limit, owner, number(now), expires, token]
        if before:
            args = [len(before), *before, *args]
        try:
            return await self._run(script, *args)
        except BaseException:
            self._unanswered_claims[asked] = token
            raise

    async def retry_failed(self, batch_id: str) -> int:
        """Failed jobs back to pending, due now, with attempts and error reset.

        Cancellation: shielded: it returns or raises, never half-done.

        Returns:
            How many jobs were requeued.

        Raises:
            BatchNotFound: no such batch.
        """
        requeued = await self._run("retry_failed", batch_id, number(self._clock()))
        if requeued is None:
            raise BatchNotFound(f"no batch {batch_id!r}")
        return int(requeued)

    async def ping(self) -> None:
        """Ask Redis for a PONG.

        Cancellation: atomic, and unlike the other methods not shielded: a
        ping writes nothing, so a caller may give up on one that hangs (the
        health check does); its late reply is dropped.

        Raises:
            StoreUnavailable: Redis did not answer.
        """
        if self._client is None:
            raise trio.ClosedResourceError("the store is closed")
        with translate_redis_errors(self._where):
            await self._client.ping()

    async def aclose(self) -> None:
        """Drop the connections; later calls raise ``trio.ClosedResourceError``.

        Idempotent. Cancellation: it does not wait.
        """
        client, self._client = self._client, None
        if client is not None:
            client.connection_pool.disconnect()


@contextlib.asynccontextmanager
async def open_redis_store(
    url: str, *, clock: Callable[[], float] | None = None
) -> AsyncIterator[RedisStore]:
    """Connect to the Redis database ``url`` names; disconnect on exit.

    The client's connection pool runs in a task group of its own around the
    body; an exception from the body comes out as itself, not wrapped in an
    exception group.

    Cancellation: atomic while opening: cancelled, nothing is left open.

    Args:
        url: ``redis://[:PASSWORD@]HOST[:PORT][/DB]``, or ``rediss://`` for TLS.
        clock: wall-clock seconds, for timestamps, delays, leases and limits;
            None: ``time.time``, and Redis's own clock for limits, so that
            engines on several hosts share one clock for them.

    Yields:
        The open store, which has answered a ping.

    Raises:
        ConfigError: the URL is malformed.
        StoreUnavailable: Redis cannot be reached.
    """
    where = checked_location(url)
    pool = SlotKeepingPool.from_url(
        url,
        decode_responses=True,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        stream_timeout=COMMAND_TIMEOUT_SECONDS,
        timeout=CONNECT_TIMEOUT_SECONDS,
    )
    client: coredis.Redis[str] = coredis.Redis(
        decode_responses=True, retry_policy=NoRetryPolicy(), connection_pool=pool
    )
    try:
        async with client:
            store = RedisStore(client, where=where, clock=clock or time.time, limit_clock=clock)
            try:
                await store.ping()
                yield store
            finally:
                await store.aclose()
    except BaseExceptionGroup as group:
        sole = sole_exception(group)
        if sole is None:
            raise
        raise sole from sole.__cause__
