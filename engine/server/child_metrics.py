"""The children of this engine's running batches in ``GET /metrics``.

Read at scrape time from each run's watch (``engine.core.watch``): per
running batch, labelled with its ``batch`` id and child ``pid``,
``batchyard_child_rss_bytes``, ``batchyard_child_cpu_seconds`` and
``batchyard_child_jobs_run`` (jobs the current child started). A batch
between two children has none.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from engine.core.engine import Engine

__all__ = ["ChildCollector"]


class ChildCollector:
    """A Prometheus collector of the engine's children."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        labels = ["batch", "pid"]
        rss = GaugeMetricFamily(
            "batchyard_child_rss_bytes", "resident memory of a batch's child", labels=labels
        )
        cpu = GaugeMetricFamily(
            "batchyard_child_cpu_seconds",
            "CPU seconds (user + system) of a batch's child",
            labels=labels,
        )
        jobs = GaugeMetricFamily(
            "batchyard_child_jobs_run", "jobs a batch's current child started", labels=labels
        )
        for batch_id in self._engine.status().running_batches:
            stats = self._engine.jobs.child_of(batch_id)
            if stats is None:
                continue
            values = [batch_id, str(stats.pid)]
            rss.add_metric(values, stats.rss_bytes)
            cpu.add_metric(values, stats.cpu_seconds)
            jobs.add_metric(values, stats.jobs_run)
        yield from (rss, cpu, jobs)
