"""Opening an engine: its store, its nursery, its children and its part in
the cluster, all owned by one ``async with`` block.

Design notes
------------
Everything an engine starts lives in the nursery ``open_engine`` opens: the
supervisor's children, the runs, the bus's publisher and follower on a
store with an event log, the cluster's loops, the scheduler and the status
line. Leaving the block shuts the engine down (``Engine.shutdown``, bounded
by the grace period plus a margin, shielded), unregisters it from the
cluster, ends the subscriptions and then cancels what is left.

On a store with an event log (Redis) the bus is joined to it
(``EventBus.serve_log``), so seqs and replay are cluster-wide.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from engine.config.child_env import child_environment
from engine.config.settings import Settings
from engine.core.bus import EventBus
from engine.core.engine import Engine
from engine.core.leases import recover_expired_leases
from engine.core.scheduler import check_schedule_types
from engine.core.status_log import serve_status_log
from engine.jobs.registry import REGISTRY, JobRegistry, load_job_modules
from engine.store import EventLog, Store, open_store
from engine.supervisor.children import ChildSupervisor
from engine.supervisor.spawner import ProcessSpawner, Spawner

__all__ = ["open_engine"]


@asynccontextmanager
async def open_engine(
    settings: Settings,
    *,
    registry: JobRegistry = REGISTRY,
    store: Store | None = None,
    spawner: Spawner | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[Engine]:
    """Open the store, start the warm children, resume remembered runs.

    Leaving the block shuts the engine down gracefully (``Engine.shutdown``).
    ``store``, when given, is used instead of opening ``settings.store_url``
    (and stays the caller's to close). ``spawner`` makes the children
    (default: ``python -m engine.child`` processes). ``clock`` is the wall
    clock of due times and backoffs; it must be the store's own (tests drive
    both from trio's clock).

    Cancellation: if the enclosing scope is cancelled, children still get
    their grace period (each child's cancel delivery is bounded by it).

    Raises:
        ConfigError: the store URL is unusable, or a schedule names a job
            type that is not registered.
        JobError: a job module cannot be imported.
        StoreUnavailable: the store cannot be opened.
    """
    load_job_modules(settings.job_modules)
    check_schedule_types(settings.schedules, registry)
    async with contextlib.AsyncExitStack() as stack:
        if store is None:
            store = await stack.enter_async_context(open_store(settings.store_url))
        await recover_expired_leases(store)
        async with trio.open_nursery() as nursery:
            supervisor = ChildSupervisor(
                nursery,
                spawner=spawner
                or ProcessSpawner(settings.job_modules, child_environment(settings, os.environ)),
                warm=settings.warm_children,
                grace_seconds=settings.shutdown_grace_seconds,
            )
            bus = EventBus(ring_size=settings.event_ring_size, buffer=settings.subscriber_buffer)
            if isinstance(store, EventLog):
                # The nursery owns the bus's publisher and follower.
                await nursery.start(bus.serve_log, store)
            engine = Engine(
                settings=settings,
                store=store,
                bus=bus,
                registry=registry,
                nursery=nursery,
                supervisor=supervisor,
                clock=clock,
            )
            await engine._open()
            nursery.start_soon(serve_status_log, engine, settings.status_log_seconds)
            try:
                yield engine
            finally:
                with trio.move_on_after(settings.shutdown_grace_seconds + 15, shield=True):
                    await engine.shutdown()
                    await engine._leave()
                engine.end_subscriptions()
                nursery.cancel_scope.cancel()
