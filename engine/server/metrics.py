"""Prometheus metrics of one server: ``GET /metrics``.

Design notes
------------
Every app gets its own ``CollectorRegistry``, so any number of apps (tests
make many) can live in one process without clashing in the global registry.

Where each number comes from:

* read at scrape time, so it is exact then: ``batchyard_jobs{state}``
  (summed over every batch in the store: all engines sharing the store see
  the same numbers), ``batchyard_active_batches`` (this engine),
  ``batchyard_store_up``, ``batchyard_subscribers{transport}`` (WebSocket
  and SSE clients connected to this server), and, from the bus's own
  counters, ``batchyard_events_published_total`` and
  ``batchyard_subscribers_dropped_total``; each running batch's child
  (``engine.server.child_metrics``);
* counted from events, by one bus subscription this module follows:
  ``batchyard_jobs_finished_total{type,state}``,
  ``batchyard_job_duration_seconds{type,state}`` (from ``duration_ms``),
  ``batchyard_job_retries_total{type}``,
  ``batchyard_jobs_rate_limited_total{type}`` and
  ``batchyard_child_restarts_total`` (``error`` events with ``restarting``).

The follower must not lose events quietly: if the bus drops it as slow, it
subscribes again with ``resume_from`` its last seq and catches up from the
replay ring, and it logs when the ring no longer held everything it missed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import Response

from engine.core.bus import SLOW_SUBSCRIBER
from engine.core.engine import Engine
from engine.errors import StoreError
from engine.server.child_metrics import ChildCollector
from protocols.events import Event, JobRetrying, JobUpdate, RateLimitedJob, RunError
from protocols.lifecycle import JobState

__all__ = ["ServerMetrics"]

log = logging.getLogger("batchyard.server")

#: Job durations span a millisecond no-op to a many-minute upload.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class _BusCollector:
    """The bus's own counters, read at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        stats = self._engine.event_statistics()
        yield CounterMetricFamily(
            "batchyard_events_published", "events published on the bus", stats.published
        )
        yield CounterMetricFamily(
            "batchyard_subscribers_dropped",
            "subscribers dropped because they could not keep up",
            stats.dropped,
        )


class ServerMetrics:
    """The metrics of one app.

    Args:
        engine: the engine whose store, bus and runs are measured.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.registry = registry = CollectorRegistry()
        self._jobs = Gauge(
            "batchyard_jobs", "jobs in the store by state", ["state"], registry=registry
        )
        self._active = Gauge(
            "batchyard_active_batches", "batches this engine runs now", registry=registry
        )
        self._store_up = Gauge(
            "batchyard_store_up", "1 when the store answered the last scrape", registry=registry
        )
        self._subscribers = Gauge(
            "batchyard_subscribers",
            "event clients connected to this server",
            ["transport"],
            registry=registry,
        )
        self._finished = Counter(
            "batchyard_jobs_finished",
            "jobs that reached a terminal state, from events",
            ["type", "state"],
            registry=registry,
        )
        self._durations = Histogram(
            "batchyard_job_duration_seconds",
            "time from a job becoming active to its terminal state",
            ["type", "state"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self._retries = Counter(
            "batchyard_job_retries", "failed attempts that run again", ["type"], registry=registry
        )
        self._rate_limited = Counter(
            "batchyard_jobs_rate_limited",
            "jobs handed back by a handler's RateLimited (no attempt used)",
            ["type"],
            registry=registry,
        )
        self._restarts = Counter(
            "batchyard_child_restarts",
            "crashed children restarted within a run",
            registry=registry,
        )
        self._duration_children: dict[tuple[str, str], Histogram] = {}
        registry.register(_BusCollector(engine))
        registry.register(ChildCollector(engine))
        for transport in ("ws", "sse"):
            self._subscribers.labels(transport)

    @contextlib.contextmanager
    def connected(self, transport: str) -> Iterator[None]:
        """Counts one event client of ``transport`` while the block runs."""
        gauge = self._subscribers.labels(transport)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def observe(self, events: Sequence[Event]) -> None:
        """Counts what a burst of events says: finished jobs by labels, one
        increment per labels and burst."""
        finished: dict[tuple[str | None, JobState], int] = {}
        durations: dict[tuple[str | None, JobState], list[float]] = {}
        for event in events:
            data = event.data
            if isinstance(data, JobUpdate):
                status = data.status
                if status is JobState.ACTIVE:
                    continue
                labels = (data.type, status)
                finished[labels] = finished.get(labels, 0) + 1
                if data.duration_ms is not None:
                    durations.setdefault(labels, []).append(data.duration_ms)
            elif isinstance(data, JobRetrying):
                self._retries.labels(data.type).inc()
            elif isinstance(data, RateLimitedJob):
                self._rate_limited.labels(data.type).inc()
            elif isinstance(data, RunError) and data.restarting:
                self._restarts.inc()
        for (job_type, status), count in finished.items():
            self._finished.labels(job_type or "unknown", status.value).inc(count)
        for (job_type, status), taken in durations.items():
            histogram = self._durations_of((job_type or "unknown", status.value))
            for duration_ms in taken:
                histogram.observe(duration_ms / 1000)

    def _durations_of(self, labels: tuple[str, str]) -> Histogram:
        """The duration histogram of ``labels``, looked up once."""
        child = self._duration_children.get(labels)
        if child is None:
            child = self._duration_children[labels] = self._durations.labels(*labels)
        return child

    async def follow(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Counts every event of the bus until it closes.

        Cancellation: atomic per burst; the counters hold what was observed.
        """
        resume_from: int | None = None
        while True:
            with self._engine.subscribe(resume_from=resume_from) as subscription:
                if resume_from is None:
                    task_status.started()
                elif not subscription.replay_complete:
                    log.warning("metrics missed events after seq %d", resume_from)
                while True:
                    try:
                        self.observe(await subscription.receive_queued())
                    except trio.EndOfChannel:
                        break
            if subscription.dropped_reason != SLOW_SUBSCRIBER:
                return
            resume_from = subscription.last_seq

    async def _refresh(self) -> None:
        self._active.set(self._engine.status().active_batches)
        try:
            batches = await self._engine.list_batches()
        except StoreError as exc:
            log.warning("metrics: the store did not answer: %s", exc)
            self._store_up.set(0)
            self._jobs.clear()
            return
        self._store_up.set(1)
        for state in JobState:
            total = sum(getattr(batch.counts, state.value) for batch in batches)
            self._jobs.labels(state.value).set(total)

    async def endpoint(self, request: Request) -> Response:
        """``GET /metrics``: the Prometheus text format.

        Cancellation: atomic; the gauges read at scrape time may be updated.

        Returns:
            The metrics, 200 even when the store does not answer
            (``batchyard_store_up`` says so).
        """
        await self._refresh()
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
