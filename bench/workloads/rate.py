"""W4 rate accuracy: ``w4_jobs`` no-op jobs under ``w4_limit`` starts per
``w4_window_seconds`` (the issue's ``20/2s``).

A job's start is the ``startedAt`` of its ``job:progress`` ``active``
frame: the child's wall clock (``time.time()``) when the handler started,
which is where the limit is enforced. The peers time their starts the same
way, in the handler (``time.time()`` in a Python peer's job,
``performance.now()`` in BullMQ's processor). Two numbers follow from the
start times (``rate_metrics``, shared with the peers):

* ``max_in_window``: the most starts inside any sliding window of the
  limit's length; a strict limiter keeps it at or below the limit. A
  handler's clock is read a moment after its limiter let it start (a task
  switch, an IPC write of the jobs starting with it), so a start may look
  slightly later than it was allowed; when the raw maximum is over the
  limit, ``jitter_ms`` says how much shorter the window has to be for the
  count to come back under it.
* ``achieved_per_window``: how much of the limit was used at saturation.
  With N jobs and a limit of L per T, the earliest the last start can come
  under a strict limit is ``(ceil(N / L) - 1) x T`` after the first; the
  measured span between the first and the last start, against that ideal,
  gives the fraction of the limit achieved (1.0 = every start as early as
  the limit allows).

Beside them, the served engine's CPU seconds from ``process/all`` to the
``done`` frame, per 1,000 jobs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.context import Context
from bench.cpu import per_thousand_jobs
from bench.live.client import Frame, open_api, open_events
from bench.live.server import open_server
from bench.model import Result
from bench.stats import max_in_window

__all__ = ["handler_starts", "rate_metrics", "rate_notes", "w4_rate_accuracy"]

_JITTER_STEPS_MS = (1, 2, 5, 10, 20, 50, 100)


def rate_metrics(
    starts: Sequence[float], limit: int, window: float
) -> dict[str, float | int | None]:
    """The W4 numbers of a list of start times (seconds, any origin)."""
    count = len(starts)
    raw = max_in_window(starts, window)
    ideal_span = (math.ceil(count / limit) - 1) * window
    span = max(starts) - min(starts) if starts else 0.0
    fraction = ideal_span / span if span > 0 else None
    jitter = None
    if raw > limit:
        jitter = next(
            (ms for ms in _JITTER_STEPS_MS if max_in_window(starts, window - ms / 1000) <= limit),
            None,
        )
    return {
        "jobs": count,
        "limit": limit,
        "window_seconds": window,
        "max_in_window": raw,
        "jitter_ms": jitter,
        "span_seconds": span,
        "ideal_span_seconds": ideal_span,
        "fraction_of_limit": fraction,
        "achieved_per_window": None if fraction is None else fraction * limit,
    }


def rate_notes(metrics: dict[str, float | int | None]) -> tuple[str, ...]:
    """A note explaining a raw maximum over the limit, when there is one."""
    raw, limit, jitter = metrics["max_in_window"], metrics["limit"], metrics["jitter_ms"]
    if raw is None or limit is None or raw <= limit:
        return ()
    if jitter is None:
        return (f"{raw} starts in one window: over the limit of {limit} by more than jitter",)
    return (
        f"raw maximum {raw} > {limit}: each start is timed by the handler's clock a moment "
        f"after its limiter let it start; with windows {jitter} ms shorter the maximum is "
        f"<= {limit}",
    )


def handler_starts(frames: Sequence[Frame]) -> list[float]:
    """The ``startedAt`` of every ``job:progress`` ``active`` frame, in
    seconds after the first of them.

    Raises:
        ValueError: an active frame carries no ``startedAt`` (an engine that
            does not send it).
    """
    starts = []
    for frame in frames:
        if frame.event == "job:progress" and frame.data.get("status") == "active":
            started_at = frame.data.get("startedAt")
            if not isinstance(started_at, int | float):
                raise ValueError(f"a job:progress active frame without startedAt: {frame.data}")
            starts.append(float(started_at))
    first = min(starts, default=0.0)
    return [start - first for start in starts]


async def w4_rate_accuracy(ctx: Context) -> list[Result]:
    """W4 on a served engine."""
    sizes = ctx.sizes
    rate = f"{sizes.w4_limit}/{sizes.w4_window_seconds:g}s"
    environment = ctx.server_env(
        "w4",
        EMBEDDING_CONCURRENCY=sizes.w1_concurrency,
        EMBEDDING_BATCH_SIZE=sizes.w4_limit,
        EMBEDDING_RATE_LIMIT=rate,
        WARM_CHILDREN=1,
    )
    async with open_server(ctx.workdir, environment) as server, open_api(server.url) as api:
        batch_id = await api.create_batch("noop", [{}] * sizes.w4_jobs)
        async with open_events(server.ws_url, batch_id) as events:
            cpu_before = server.cpu_seconds()
            await api.process_all(batch_id)
            frames = await events.until_end(batch_id)
            cpu_used = server.cpu_seconds() - cpu_before
    starts = handler_starts(frames)
    metrics = rate_metrics(starts, sizes.w4_limit, sizes.w4_window_seconds)
    metrics["engine_cpu_seconds"] = cpu_used
    metrics["engine_cpu_seconds_per_1000_jobs"] = per_thousand_jobs(cpu_used, sizes.w4_jobs)
    return [
        Result(
            workload="W4",
            system="batchyard",
            config=(
                f"EMBEDDING_RATE_LIMIT={rate} (strict sliding window), concurrency "
                f"{sizes.w1_concurrency}, {ctx.store_name} store; starts = startedAt of "
                "job:progress active (the child's clock as the handler starts)"
            ),
            metrics=metrics,
            samples={"starts_s": sorted(starts)},
            notes=rate_notes(metrics),
        )
    ]
