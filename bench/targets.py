"""The issue's targets, judged on one run's results (as ratios within the run)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bench.model import Result, Target, Verdict

__all__ = ["judge"]

#: Exit within grace (or the jobs' remaining time) plus this much.
_EXIT_SLACK = 0.3

#: W4 times each start by the handler's clock (batchyard: ``startedAt``), read
#: a moment after the limiter let the job start. A raw count over the limit
#: that disappears when the window is this much shorter is that moment (a
#: task switch, the IPC write of the jobs starting together), not a start
#: too many; anything more is counted as over the limit.
_JITTER_TOLERANCE_MS = 10


def _find(results: Sequence[Result], workload: str, system: str) -> Result | None:
    for result in results:
        if result.workload == workload and result.system == system and result.status == "ok":
            return result
    return None


def _target(workload: str, goal: str, ok: bool | None, measured: str) -> Target:
    verdict: Verdict = "not measured" if ok is None else "met" if ok else "missed"
    return Target(workload=workload, goal=goal, verdict=verdict, measured=measured)


def _w1(results: Sequence[Result]) -> Iterator[Target]:
    ours = _find(results, "W1", "batchyard")
    peers = [
        r
        for r in results
        if r.workload == "W1"
        and r.status == "ok"
        and not r.system.startswith(("batchyard", "floor"))
    ]
    goal = "no-op throughput >= 3x the best peer's"
    if ours is None or not peers:
        yield _target("W1", goal, None, "batchyard or every peer missing")
        return
    best = max(peers, key=lambda r: r.metric("jobs_per_second") or 0.0)
    mine, theirs = ours.metric("jobs_per_second") or 0.0, best.metric("jobs_per_second") or 1.0
    engine = _find(results, "W1", "batchyard (engine only)")
    extra = ""
    if engine is not None:
        extra = f"; engine alone {engine.metric('jobs_per_second') or 0:,.0f} jobs/s"
    yield _target(
        "W1",
        goal,
        mine >= 3 * theirs,
        f"{mine:,.0f} vs {best.system} {theirs:,.0f} jobs/s = {mine / theirs:.2f}x{extra}",
    )


def _w2(results: Sequence[Result]) -> Iterator[Target]:
    ours = _find(results, "W2", "batchyard")
    value = None if ours is None else ours.metric("efficiency")
    yield _target(
        "W2",
        "efficiency >= 0.9",
        None if value is None else value >= 0.9,
        "missing" if value is None else f"{value:.2f}",
    )


def _w3(results: Sequence[Result]) -> Iterator[Target]:
    warm = _find(results, "W3", "batchyard (warm child)")
    cold = _find(results, "W3", "batchyard (cold)")
    floor = _find(results, "W3", "floor: process start")
    warm_p50 = None if warm is None else warm.metric("p50_ms")
    yield _target(
        "W3",
        "warm child: p50 start latency <= 20 ms",
        None if warm_p50 is None else warm_p50 <= 20,
        "missing" if warm_p50 is None else f"p50 {warm_p50:.1f} ms",
    )
    cold_p50 = None if cold is None else cold.metric("p50_ms")
    floor_p50 = None if floor is None else floor.metric("p50_ms")
    if cold_p50 is None or not floor_p50:
        yield _target("W3", "cold: p50 within 1.2x the process-start floor", None, "missing")
        return
    yield _target(
        "W3",
        "cold: p50 within 1.2x the process-start floor",
        cold_p50 <= 1.2 * floor_p50,
        f"{cold_p50:.0f} ms vs floor {floor_p50:.0f} ms = {cold_p50 / floor_p50:.2f}x",
    )


def _w4(results: Sequence[Result]) -> Iterator[Target]:
    ours = _find(results, "W4", "batchyard")
    if ours is None:
        yield _target("W4", "never over the limit; >= 0.98 of it", None, "missing")
        return
    raw, limit = ours.metrics.get("max_in_window"), ours.metrics.get("limit")
    jitter = ours.metrics.get("jitter_ms")
    over = raw is not None and limit is not None and raw > limit
    how = f"max {raw} in any window (limit {limit})"
    if over and jitter is not None:
        how += f"; <= {limit} with windows {jitter} ms shorter (clock read after the start)"
    within_jitter = jitter is not None and jitter <= _JITTER_TOLERANCE_MS
    yield _target("W4", "never over the limit (sliding window)", not over or within_jitter, how)
    fraction = ours.metric("fraction_of_limit")
    yield _target(
        "W4",
        ">= 0.98 of the limit at saturation",
        None if fraction is None else fraction >= 0.98,
        "missing" if fraction is None else f"{fraction:.3f} of the limit",
    )


def _w5(results: Sequence[Result]) -> Iterator[Target]:
    long = _find(results, "W5", "batchyard (sleep longer than grace)")
    short = _find(results, "W5", "batchyard (sleep shorter than grace)")
    if long is not None:
        over = long.metric("over_grace_seconds") or 0.0
        yield _target(
            "W5",
            f"exit within grace + {_EXIT_SLACK} s",
            over <= _EXIT_SLACK,
            f"{long.metric('exit_seconds'):.2f} s with grace {long.metric('grace_seconds'):g} s",
        )
    if short is not None:
        over = short.metric("over_remaining_seconds") or 0.0
        yield _target(
            "W5",
            f"exit within the jobs' remaining time + {_EXIT_SLACK} s",
            over <= _EXIT_SLACK,
            f"{short.metric('exit_seconds'):.2f} s, jobs had "
            f"{short.metric('remaining_seconds'):.2f} s left",
        )
    lost = sum(int(r.metric("lost") or 0) for r in (long, short) if r is not None)
    measured = long is not None or short is not None
    yield _target("W5", "zero jobs lost", lost == 0 if measured else None, f"{lost} lost")


def _w6(results: Sequence[Result]) -> Iterator[Target]:
    runs = [r for r in results if r.workload == "W6" and r.status == "ok"]
    if not runs:
        yield _target("W6", "1,000 subscribers: 0 frames lost, p99 <= 100 ms", None, "missing")
        return
    largest = max(runs, key=lambda r: r.metric("subscribers") or 0)
    subscribers = int(largest.metric("subscribers") or 0)
    lost = int(largest.metric("frames_lost") or 0)
    p99 = largest.metric("p99_ms") or 0.0
    yield _target(
        "W6", f"{subscribers:,} subscribers: zero frames lost", lost == 0, f"{lost:,} lost"
    )
    yield _target(
        "W6",
        f"{subscribers:,} subscribers: p99 delivery <= 100 ms",
        p99 <= 100,
        f"p99 {p99:,.0f} ms, {int(largest.metric('subscribers_dropped') or 0):,} dropped as slow"
        + _busiest_client(largest),
    )


def _busiest_client(result: Result) -> str:
    share = result.metric("busiest_client_cpu_share")
    return "" if share is None else f"; busiest client process {share:.0%} of a core"


def _w7(results: Sequence[Result]) -> Iterator[Target]:
    ours = _find(results, "W7", "batchyard")
    growth = None if ours is None else ours.metric("growth")
    goal = "engine RSS flat (+-10 %) from 0 to the pending jobs"
    if ours is None or growth is None:
        yield _target("W7", goal, None, "missing")
        return
    idle, loaded = ours.metric("engine_idle_mib") or 0.0, ours.metric("engine_pending_mib") or 0.0
    yield _target(
        "W7", goal, abs(growth) <= 0.10, f"{idle:.0f} -> {loaded:.0f} MiB ({growth:+.1%})"
    )


def judge(results: Sequence[Result]) -> tuple[Target, ...]:
    """Every target of the issue, met, missed or not measured in ``results``."""
    judges = (_w1, _w2, _w3, _w4, _w5, _w6, _w7)
    return tuple(target for judge_one in judges for target in judge_one(results))
