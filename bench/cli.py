"""``python -m bench``: run the workloads and the peers, write the results.

Each batchyard workload runs in a ``trio.run`` of its own, each peer in
plain Python with its worker in a subprocess; a workload or peer that
breaks is recorded as failed with the reason and the run goes on. The
results go to ``OUT/latest.json`` (``bench.model.Report``), ``OUT/latest.md``
and, when matplotlib is importable, PNG charts in ``OUT``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import trio

from bench.context import Context
from bench.machine import describe_machine, versions
from bench.model import SCHEMA_VERSION, Report, Result, failed, skipped, write_report
from bench.peers import bullmq_peer
from bench.redis_keys import REDIS_STORE
from bench.registry import PEERS, WORKLOADS
from bench.render.charts import can_draw, draw_charts
from bench.render.markdown import render_markdown, side_by_side_table, summary_table
from bench.sizes import FULL, QUICK, Sizes
from bench.targets import judge
from engine.config.parsers import redact_url

__all__ = ["main"]

_DEFAULT_OUT = Path(__file__).resolve().parent / "results"
_PEER_WORKLOADS = ("W1", "W2", "W4", "W3")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure batchyard (W1-W7) and its peers side by side.",
    )
    parser.add_argument("--quick", action="store_true", help="every workload tiny (< 60 s)")
    parser.add_argument("--out", type=Path, default=_DEFAULT_OUT, help="results directory")
    parser.add_argument(
        "--peers",
        default="all",
        help="'all', 'none', or names separated by commas: "
        + ", ".join(peer.name for peer in PEERS),
    )
    parser.add_argument("--workloads", default="all", help="'all', 'none', or keys such as W1,W3")
    parser.add_argument(
        "--store",
        default="sqlite",
        help="batchyard's store: 'sqlite' (a fresh file per workload) or a store URL such as "
        f"{REDIS_STORE} (batchyard's keys there are deleted before each workload, nothing else)",
    )
    parser.add_argument(
        "--scale-out-store",
        default=REDIS_STORE,
        help="the Redis store of W8 (scale-out) when --store is not Redis; batchyard's keys "
        "there are deleted before each run, nothing else",
    )
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/15",
        help="the peers' Redis database; the bench empties it (FLUSHDB) before each run",
    )
    parser.add_argument("--no-charts", action="store_true", help="do not draw PNG charts")
    return parser


def _chosen(text: str, known: Sequence[str], what: str) -> list[str]:
    if text == "all":
        return list(known)
    if text == "none":
        return []
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def _error(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:500]


async def _on_fresh_store(
    run: Callable[[Context], Awaitable[list[Result]]], ctx: Context
) -> list[Result]:
    await ctx.fresh_store()
    return await run(ctx)


def _run_workloads(ctx: Context, keys: Sequence[str]) -> list[Result]:
    results: list[Result] = []
    for workload in WORKLOADS:
        if workload.key not in keys:
            continue
        ctx.say(f"{workload.key} {workload.title} ...")
        began = time.monotonic()
        try:
            results += trio.run(_on_fresh_store, workload.run, ctx)
        except Exception as exc:
            results.append(failed(workload.key, "batchyard", _error(exc)))
            ctx.say(f"  failed: {_error(exc)}")
        ctx.say(f"  {time.monotonic() - began:.1f} s")
    return results


def _run_peers(ctx: Context, names: Sequence[str]) -> list[Result]:
    results: list[Result] = []
    for peer in PEERS:
        if peer.name not in names:
            reason = "excluded by --peers"
            results += [skipped(workload, peer.name, reason) for workload in _PEER_WORKLOADS]
            continue
        ctx.say(f"peer {peer.name} ...")
        began = time.monotonic()
        try:
            results += peer.run(ctx)
        except Exception as exc:
            results.append(failed("W1", peer.name, _error(exc)))
        ctx.say(f"  {time.monotonic() - began:.1f} s")
    return results


def _caps(sizes: Sizes, quick: bool) -> tuple[str, ...]:
    if quick:
        return ("--quick: every workload at a tiny size; the numbers mean nothing",)
    return (f"arq at its default poll_delay: W1 only, on {sizes.arq_default_jobs:,} jobs",)


def _store_words(ctx: Context) -> str:
    if ctx.store == "sqlite":
        return "SQLite (a fresh file per workload)"
    return f"{redact_url(ctx.store)} (batchyard's keys deleted before each workload)"


def _notes(ctx: Context, load_before: float, charts_note: str | None) -> tuple[str, ...]:
    load_after = os.getloadavg()[0]
    notes = [
        f"1-minute load average {load_before:.2f} before the run, {load_after:.2f} after "
        "(other work on the machine shows up in every number)",
        "Peers run against the local Redis; each measured on a worker whose concurrency "
        "slots are all started, draining a queue filled before it (batchyard drains a "
        "batch submitted before process/all, with a warm child)",
        "W3 and W6 serve the engine in the bench process (open_test_server): W3 waits for the "
        "warm child between runs, W6 takes each event's publication time where it is published",
        "W1, W2, W4, W5 and W7 run the engine behind its HTTP/WebSocket server in a subprocess",
        f"batchyard's store: {_store_words(ctx)}; W8 runs `batchyard worker` processes on "
        f"{redact_url(ctx.scale_out_redis)}",
    ]
    if charts_note:
        notes.append(charts_note)
    return tuple(notes)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; 0 when it wrote its results (whatever they say)."""
    args = _parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    workload_keys = _chosen(args.workloads, [w.key for w in WORKLOADS], "workloads")
    peer_names = _chosen(args.peers, [p.name for p in PEERS], "peers")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="batchyard-bench-") as workdir:
        ctx = Context(
            sizes=sizes,
            workdir=Path(workdir),
            store=args.store,
            redis_url=args.redis,
            scale_out_store=args.scale_out_store,
            quick=args.quick,
            say=lambda line: print(line, flush=True),
        )
        results = _run_workloads(ctx, workload_keys) + _run_peers(ctx, peer_names)
    charts: tuple[str, ...] = ()
    charts_note = None
    if args.no_charts:
        charts_note = "charts not drawn (--no-charts)"
    elif not can_draw():
        charts_note = "charts not drawn: matplotlib is not importable (pip install '.[bench]')"
    else:
        charts = draw_charts(results, out)
    report = Report(
        schema=SCHEMA_VERSION,
        mode="quick" if args.quick else "full",
        started_at=started_at,
        duration_seconds=round(time.monotonic() - began, 1),
        machine=describe_machine(),
        versions=versions(args.redis, bullmq_peer.version())
        if peer_names
        else versions(args.redis, None),
        store=ctx.store_name if args.store == "sqlite" else redact_url(args.store),
        sizes=sizes.as_dict(),
        caps=_caps(sizes, args.quick),
        results=tuple(results),
        targets=judge(results),
        charts=charts,
        notes=_notes(ctx, load_before, charts_note),
    )
    write_report(report, out / "latest.json")
    (out / "latest.md").write_text(render_markdown(report), encoding="utf-8")
    print("\n".join([*side_by_side_table(report), "", *summary_table(report)]))
    if charts_note:
        print(charts_note)
    print(f"wrote {out / 'latest.json'} and {out / 'latest.md'}")
    return 0
