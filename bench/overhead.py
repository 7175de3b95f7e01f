"""Per-job overhead: no-op jobs per second through one batch.

    python -m bench.overhead [--jobs 10000] [--concurrency 16]

One engine on a throwaway SQLite store (or the store given), one batch of ``noop`` jobs, no rate
limit, a warm child: the time from ``start`` to the batch's ``done`` event is
everything batchyard adds per job (claim, IPC both ways, the store write,
two events), since the job itself does nothing. Beside the time, the CPU
seconds of this process and its children over the same span (``bench.cpu``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import attrs
import trio

from bench.cpu import tree_cpu_seconds
from engine.config.settings import RateLimit, Settings
from engine.core.bus import Subscription
from engine.core.engine import JobRequest
from engine.core.startup import open_engine


@attrs.frozen(kw_only=True)
class Overhead:
    """One batch of no-op jobs on an engine in this process."""

    submit_seconds: float
    seconds: float
    #: CPU seconds of this process and its children while the batch ran.
    cpu_seconds: float


async def measure(
    jobs: int, concurrency: int, batch_size: int, store_url: str | None = None
) -> Overhead:
    """Submit ``jobs`` no-op jobs and run them; what that took.

    Args:
        jobs: how many no-op jobs the batch holds.
        concurrency: jobs in flight at once.
        batch_size: jobs claimed per store round trip.
        store_url: the engine's store; None: a SQLite file of its own.
    """
    with tempfile.TemporaryDirectory(prefix="batchyard-bench-") as directory:
        settings = Settings(
            store_url=store_url or f"sqlite:///{Path(directory) / 'bench.db'}",
            concurrency=concurrency,
            batch_size=batch_size,
            rate_limit=RateLimit(count=0, per_seconds=60),
        )
        async with open_engine(settings) as engine:
            began = time.perf_counter()
            batch_id, _ = await engine.create_batch(
                None, "noop", [JobRequest() for _ in range(jobs)]
            )
            submitted = time.perf_counter() - began
            await engine.wait_warm()
            with engine.subscribe([batch_id]) as events:
                cpu_before = tree_cpu_seconds(os.getpid())
                began = time.perf_counter()
                await engine.start(batch_id)
                await _until_the_run_ends(events)
                ran = time.perf_counter() - began
                cpu_used = tree_cpu_seconds(os.getpid()) - cpu_before
            return Overhead(submit_seconds=submitted, seconds=ran, cpu_seconds=cpu_used)


async def _until_the_run_ends(events: Subscription) -> None:
    """Read ``events`` until ``done`` or ``error``, taking everything queued
    at each wake-up (as the server's streams do: a burst of jobs publishes
    many events at once, and one event per wake-up would fall behind).

    Raises:
        RuntimeError: the subscription was dropped before the run ended.
    """
    while True:
        try:
            taken = await events.receive_queued()
        except trio.EndOfChannel:
            raise RuntimeError(f"events dropped: {events.dropped_reason}") from None
        if any(event.event in ("done", "error") for event in taken):
            return


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    run = trio.run(measure, args.jobs, args.concurrency, args.batch_size)
    print(
        f"{args.jobs} noop jobs, concurrency {args.concurrency}, batch size {args.batch_size}: "
        f"submit {args.jobs / run.submit_seconds:,.0f} jobs/s, "
        f"run {args.jobs / run.seconds:,.0f} jobs/s ({run.seconds * 1e6 / args.jobs:.0f} us "
        f"per job, {run.cpu_seconds * 1e6 / args.jobs:.0f} us of CPU)"
    )


if __name__ == "__main__":
    main()
