"""How big each workload is: the issue's sizes, and the tiny ``--quick`` ones.

Every size a workload reads is a field here, so ``latest.json`` can record
exactly what ran (``Sizes.as_dict``) and a cap is visible in one place.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["FULL", "QUICK", "Sizes"]


@attrs.frozen(kw_only=True)
class Sizes:
    """The sizes of one run; see the workload modules for what each means."""

    w1_jobs: int
    w1_concurrency: int
    # batchyard claims this many jobs per store round trip (and prefetches
    # as many into the child); for no-op jobs 200 is its best setting: about
    # a tenth less CPU per job than 50, and nothing more from 500.
    w1_batch_size: int
    # Every system's W1 and W2 are run this many times each and the median
    # run reported (``bench.repeat``).
    w1_w2_runs: int
    w2_jobs: int
    w2_sleep_seconds: float
    w2_concurrency: int
    w3_runs: int
    w4_jobs: int
    w4_limit: int
    w4_window_seconds: float
    w5_jobs: int
    w5_concurrency: int
    w5_grace_seconds: float
    w5_long_sleep_seconds: float
    w5_short_sleep_seconds: float
    # (subscribers, jobs) per run; a job makes about 2 events, so 1,000
    # subscribers on 1,000 jobs are over 2 million frames.
    w6_runs: tuple[tuple[int, int], ...]
    w6_job_seconds: float
    w6_concurrency: int
    w7_pending: int
    # W8: w1_jobs no-op jobs spread over w8_batches batches, run by 1, 2, ...
    # up to w8_max_workers `batchyard worker` processes.
    w8_batches: int
    w8_max_workers: int
    latency_runs: int
    # arq at its default poll_delay (0.5 s) drains about 200 jobs/s, so its
    # no-op run is capped to keep the whole bench within minutes.
    arq_default_jobs: int

    def as_dict(self) -> Mapping[str, int | float]:
        """Every size by name; each W6 run as its job count by subscriber count."""
        values = attrs.asdict(self)
        values["w6_runs"] = len(self.w6_runs)
        for subscribers, jobs in self.w6_runs:
            values[f"w6_jobs_{subscribers}_subscribers"] = jobs
        return values


FULL = Sizes(
    w1_jobs=10_000,
    w1_concurrency=16,
    w1_batch_size=200,
    w1_w2_runs=3,
    w2_jobs=1_000,
    w2_sleep_seconds=0.01,
    w2_concurrency=50,
    w3_runs=50,
    w4_jobs=100,
    w4_limit=20,
    w4_window_seconds=2.0,
    w5_jobs=8,
    w5_concurrency=4,
    w5_grace_seconds=3.0,
    w5_long_sleep_seconds=30.0,
    w5_short_sleep_seconds=0.5,
    w6_runs=((100, 1_000), (1_000, 1_000)),
    w6_job_seconds=0.01,
    w6_concurrency=16,
    w7_pending=100_000,
    w8_batches=30,
    w8_max_workers=3,
    latency_runs=50,
    arq_default_jobs=2_000,
)

QUICK = Sizes(
    w1_jobs=200,
    # Small pools: RQ's concurrency is processes, each a Python start-up.
    w1_concurrency=4,
    w1_batch_size=50,
    w1_w2_runs=1,
    w2_jobs=50,
    w2_sleep_seconds=0.01,
    w2_concurrency=10,
    w3_runs=4,
    w4_jobs=12,
    w4_limit=4,
    w4_window_seconds=1.0,
    w5_jobs=4,
    w5_concurrency=2,
    w5_grace_seconds=1.0,
    w5_long_sleep_seconds=30.0,
    w5_short_sleep_seconds=0.3,
    w6_runs=((2, 20), (8, 10)),
    w6_job_seconds=0.01,
    w6_concurrency=4,
    w7_pending=2_000,
    w8_batches=4,
    w8_max_workers=2,
    latency_runs=4,
    arq_default_jobs=50,
)
