"""Running a Python peer on W1, W2, W4 and single-job latency.

Design notes
------------
A peer module describes one job system: how to start its worker
(``worker_command``), how to enqueue bench jobs (``enqueue``), its rate
limiter if it has one, and its configuration in words. This module runs the
same four measurements on every peer, against one Redis database that it
empties (``FLUSHDB``) before each measurement.

Throughput runs drain a *pre-filled* queue on a *ready* worker, as
batchyard's ``process/all`` drains a pre-filled batch with a warm child:
the worker is started, every one of its concurrency slots is filled with a
held job (``bench.peers.signals``), the measured jobs are enqueued (that is
the submit time), the held jobs are released, and the time runs from the
first measured job's start to the last one's end, both as the worker saw
them. Latency is one job at a time on an idle, ready worker: from the
``enqueue`` call to the handler's start.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import attrs

from bench.context import Context
from bench.live.server import REPO
from bench.model import Result, failed, skipped
from bench.peers import signals
from bench.repeat import median_run
from bench.stats import percentile
from bench.workloads.rate import rate_metrics, rate_notes

# redis-py types a sync client's answers as "Awaitable | value"; with a sync
# client they are values, so the client is handled as Any.
Redis = Any

__all__ = [
    "QUICK_SKIP",
    "Job",
    "PythonPeer",
    "flushed_client",
    "missing_modules",
    "run_python_peer",
]

#: Why a peer's W2 and W4 do not run in --quick mode.
QUICK_SKIP = "not run in --quick (W1 and single-job latency only)"

#: A worker that has not filled its slots by then is broken, not slow.
_READY_TIMEOUT = 120.0
_STOP_TIMEOUT = 2.0


@attrs.frozen(kw_only=True)
class Job:
    """One bench job's arguments (see ``bench.peers.signals.job``)."""

    run: str
    total: int
    seconds: float = 0.0
    record_start: bool = False
    hold: bool = False

    def args(self) -> tuple[str, int, float, bool, bool]:
        return (self.run, self.total, self.seconds, self.record_start, self.hold)


class PythonPeer(Protocol):
    """What a Python peer module provides."""

    @property
    def name(self) -> str:
        """The peer's name in the output."""

    @property
    def modules(self) -> tuple[str, ...]:
        """Modules that must import for the peer to run."""

    @property
    def shared_count(self) -> bool:
        """Several worker processes: jobs are counted in Redis."""

    @property
    def rate_limiter(self) -> str | None:
        """How "W4's limit" is set on this peer, or None when it has no limiter."""

    def describe(self, concurrency: int) -> str: ...

    def worker_command(
        self, redis_url: str, concurrency: int, rate: tuple[int, float] | None
    ) -> list[str]: ...

    def enqueue(self, redis_url: str, jobs: Sequence[Job], rated: bool) -> None: ...


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The names among ``modules`` that cannot be imported here."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


@contextmanager
def _worker(
    ctx: Context, peer: PythonPeer, concurrency: int, rate: tuple[int, float] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    command = peer.worker_command(ctx.redis_url, concurrency, rate)
    env = {**os.environ, "BENCH_REDIS_URL": ctx.redis_url, "BENCH_CONCURRENCY": str(concurrency)}
    if rate is not None:
        env["BENCH_RATE_LIMIT"], env["BENCH_RATE_WINDOW"] = str(rate[0]), f"{rate[1]:g}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if peer.shared_count:
        env["BENCH_SHARED_COUNT"] = "1"
    log = ctx.workdir / f"peer-{peer.name.replace(' ', '-')}-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            _stop(process)


def _descendants(pid: int) -> list[Any]:
    import psutil  # type: ignore[import-untyped]

    try:
        children: list[Any] = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return children


def _stop(process: subprocess.Popen[bytes]) -> None:
    # The worker may have children of its own (pools): signal its group, and
    # afterwards kill whichever of its descendants left the group (a pool
    # worker that outlived its pool would take the next run's jobs and keep
    # its name registered, so that the next pool's workers refuse to start).
    descendants = _descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    _kill_all(descendants)


def _kill_all(processes: list[Any]) -> None:
    import psutil

    for child in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(processes, timeout=_STOP_TIMEOUT)


def flushed_client(url: str) -> Redis:
    """A client of the bench's Redis database, emptied first.

    Imported here, not at the top: the harness runs without redis-py when
    no peer is asked for.
    """
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    return client


def _new_run() -> str:
    return uuid.uuid4().hex[:12]


def _wait(client: Redis, key: str, timeout: float) -> float:
    answer = client.blpop([key], timeout=max(1, int(timeout)))
    if answer is None:
        raise TimeoutError(f"nothing on {key} within {timeout:g} s")
    return float(answer[1])


def _fill(client: Redis, peer: PythonPeer, url: str, slots: int) -> str:
    """Occupy every slot of the worker with a held job; the held run's id."""
    run = _new_run()
    peer.enqueue(url, [Job(run=run, total=slots, record_start=True, hold=True)] * slots, False)
    deadline = time.monotonic() + _READY_TIMEOUT
    while client.llen(signals.STARTS.format(run=run)) < slots:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker did not fill {slots} slots in {_READY_TIMEOUT:g} s")
        time.sleep(0.01)
    return run


def _release(client: Redis, run: str, slots: int) -> None:
    client.rpush(signals.RELEASE.format(run=run), *([1] * slots))


def _drain(
    ctx: Context,
    peer: PythonPeer,
    jobs: Sequence[Job],
    concurrency: int,
    rate: tuple[int, float] | None = None,
) -> tuple[float, float, float, list[float]]:
    """Seconds to enqueue ``jobs``, their first start and last end, and the
    start times they recorded (when asked to)."""
    client = flushed_client(ctx.redis_url)
    with _worker(ctx, peer, concurrency, rate):
        held = _fill(client, peer, ctx.redis_url, concurrency)
        began = time.monotonic()
        peer.enqueue(ctx.redis_url, jobs, rate is not None)
        submitted = time.monotonic() - began
        _release(client, held, concurrency)
        run = jobs[0].run
        end = _wait(client, signals.DONE.format(run=run), max(120.0, len(jobs) / 20))
        first = min(float(t) for t in client.lrange(signals.FIRST.format(run=run), 0, -1))
        starts = [float(t) for t in client.lrange(signals.STARTS.format(run=run), 0, -1)]
    return submitted, first, end, starts


def _w1(ctx: Context, peer: PythonPeer, jobs: int) -> Result:
    concurrency = ctx.sizes.w1_concurrency
    run = _new_run()
    submitted, first, end, _ = _drain(ctx, peer, [Job(run=run, total=jobs)] * jobs, concurrency)
    return Result(
        workload="W1",
        system=peer.name,
        config=peer.describe(concurrency),
        metrics={
            "jobs": jobs,
            "jobs_per_second": jobs / (end - first),
            "seconds": end - first,
            "submit_seconds": submitted,
            "submit_jobs_per_second": jobs / submitted,
        },
    )


def _w2(ctx: Context, peer: PythonPeer) -> Result:
    sizes = ctx.sizes
    run = _new_run()
    jobs = [Job(run=run, total=sizes.w2_jobs, seconds=sizes.w2_sleep_seconds)] * sizes.w2_jobs
    _, first, end, _ = _drain(ctx, peer, jobs, sizes.w2_concurrency)
    ideal = sizes.w2_jobs * sizes.w2_sleep_seconds / sizes.w2_concurrency
    return Result(
        workload="W2",
        system=peer.name,
        config=peer.describe(sizes.w2_concurrency),
        metrics={
            "jobs": sizes.w2_jobs,
            "seconds": end - first,
            "ideal_seconds": ideal,
            "efficiency": ideal / (end - first),
            "jobs_per_second": sizes.w2_jobs / (end - first),
        },
    )


def _w4(ctx: Context, peer: PythonPeer) -> Result:
    sizes = ctx.sizes
    if peer.rate_limiter is None:
        return skipped("W4", peer.name, "has no rate limiter")
    run = _new_run()
    jobs = [Job(run=run, total=sizes.w4_jobs, record_start=True)] * sizes.w4_jobs
    rate = (sizes.w4_limit, sizes.w4_window_seconds)
    _, _, _, starts = _drain(ctx, peer, jobs, sizes.w1_concurrency, rate)
    metrics = rate_metrics(starts, sizes.w4_limit, sizes.w4_window_seconds)
    first = min(starts)
    return Result(
        workload="W4",
        system=peer.name,
        config=f"{peer.rate_limiter}; {peer.describe(sizes.w1_concurrency)}",
        metrics=metrics,
        samples={"starts_s": sorted(t - first for t in starts)},
        notes=rate_notes(metrics),
    )


def _latency(ctx: Context, peer: PythonPeer) -> Result:
    concurrency = ctx.sizes.w1_concurrency
    client = flushed_client(ctx.redis_url)
    latencies = []
    with _worker(ctx, peer, concurrency):
        held = _fill(client, peer, ctx.redis_url, concurrency)
        _release(client, held, concurrency)
        _wait(client, signals.DONE.format(run=held), 60)
        for _ in range(ctx.sizes.latency_runs):
            run = _new_run()
            began = time.time()
            peer.enqueue(ctx.redis_url, [Job(run=run, total=1, record_start=True)], False)
            latencies.append((_wait(client, signals.STARTS.format(run=run), 30) - began) * 1000)
            _wait(client, signals.DONE.format(run=run), 30)
    return Result(
        workload="W3",
        system=peer.name,
        config=f"single job, enqueue to handler start, idle worker; {peer.describe(concurrency)}",
        metrics={
            "runs": len(latencies),
            "job_start_p50_ms": percentile(latencies, 50),
            "job_start_p99_ms": percentile(latencies, 99),
        },
        samples={"job_start_ms": latencies},
    )


def _guarded(workload: str, peer: PythonPeer, measure: Callable[[], Result]) -> Result:
    try:
        return measure()
    except Exception as exc:
        return failed(workload, peer.name, f"{type(exc).__name__}: {exc}", peer.describe(0))


def run_python_peer(
    ctx: Context, peer: PythonPeer, *, w1_jobs: int | None = None, only_w1: bool = False
) -> list[Result]:
    """Every measurement of ``peer``, skipped as a whole when it is not installed."""
    workloads = ("W1",) if only_w1 else ("W1", "W2", "W4", "W3")
    missing = missing_modules(peer.modules)
    if missing:
        reason = f"not installed ({', '.join(missing)}): pip install '.[bench]'"
        return [skipped(w, peer.name, reason) for w in workloads]
    jobs = w1_jobs or ctx.sizes.w1_jobs
    runs = range(ctx.sizes.w1_w2_runs)
    results = [_guarded("W1", peer, lambda: median_run([_w1(ctx, peer, jobs) for _ in runs]))]
    if only_w1:
        return results
    # A worker start costs a Python start-up per process (seconds for Celery
    # or a pool of RQ workers), so --quick keeps to two of them per peer.
    if ctx.quick:
        results += [skipped(w, peer.name, QUICK_SKIP) for w in ("W2", "W4")]
    else:
        results.append(
            _guarded("W2", peer, lambda: median_run([_w2(ctx, peer) for _ in runs], "efficiency"))
        )
        results.append(_guarded("W4", peer, lambda: _w4(ctx, peer)))
    results.append(_guarded("W3", peer, lambda: _latency(ctx, peer)))
    return results
