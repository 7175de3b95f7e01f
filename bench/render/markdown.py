"""``latest.md``: the tables of one run, the targets, the machine, the versions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench.model import Report, Result

__all__ = ["render_markdown", "side_by_side_table", "summary_table"]

Column = tuple[str, Callable[[Result], str]]


def _number(name: str, digits: int = 0, scale: float = 1.0) -> Callable[[Result], str]:
    def cell(result: Result) -> str:
        value = result.metric(name)
        return "-" if value is None else f"{value * scale:,.{digits}f}"

    return cell


#: Every batchyard workload's cost apart from its wall time (``bench.cpu``).
_ENGINE_CPU: Column = ("engine CPU s / 1k jobs", _number("engine_cpu_seconds_per_1000_jobs", 3))


def _start_clock(result: Result) -> str:
    # Every system's W4 starts are read where its handler starts; the clock
    # differs, and the table says which.
    if result.system.startswith("batchyard"):
        return "startedAt: the child's time.time() as the handler starts"
    if result.system == "bullmq":
        return "performance.now() as the processor starts"
    return "time.time() as the job starts, in the worker"


def _status(result: Result) -> str:
    return "" if result.status == "ok" else f"**{result.status}**: {result.reason}"


_COLUMNS: dict[str, list[Column]] = {
    "W1": [
        ("jobs/s", _number("jobs_per_second")),
        ("seconds", _number("seconds", 2)),
        ("end to end s", _number("end_to_end_seconds", 2)),
        ("submit jobs/s", _number("submit_jobs_per_second")),
        _ENGINE_CPU,
    ],
    "W2": [
        ("seconds", _number("seconds", 3)),
        ("end to end s", _number("end_to_end_seconds", 3)),
        ("ideal s", _number("ideal_seconds", 3)),
        ("efficiency", _number("efficiency", 3)),
        _ENGINE_CPU,
    ],
    "W3": [
        ("start p50 ms", _number("p50_ms", 1)),
        ("start p99 ms", _number("p99_ms", 1)),
        ("job start p50 ms", _number("job_start_p50_ms", 1)),
        ("job start p99 ms", _number("job_start_p99_ms", 1)),
        _ENGINE_CPU,
    ],
    "W4": [
        ("max in window", _number("max_in_window")),
        ("limit", _number("limit")),
        ("jitter ms", _number("jitter_ms")),
        ("fraction of limit", _number("fraction_of_limit", 3)),
        ("starts timed by", _start_clock),
        _ENGINE_CPU,
    ],
    "W5": [
        ("exit s", _number("exit_seconds", 2)),
        ("grace s", _number("grace_seconds", 1)),
        ("jobs' remaining s", _number("remaining_seconds", 2)),
        ("exit code", _number("exit_code")),
        ("lost", _number("lost")),
        _ENGINE_CPU,
    ],
    "W6": [
        ("subscribers", _number("subscribers")),
        ("jobs", _number("jobs")),
        ("events", _number("events")),
        ("p50 ms", _number("p50_ms", 1)),
        ("p99 ms", _number("p99_ms", 1)),
        ("frames lost", _number("frames_lost")),
        ("dropped", _number("subscribers_dropped")),
        _ENGINE_CPU,
        ("client processes", _number("client_processes")),
        ("busiest client CPU %", _number("busiest_client_cpu_share", 0, 100)),
    ],
    "W7": [
        ("engine idle MiB", _number("engine_idle_mib", 1)),
        ("engine + pending MiB", _number("engine_pending_mib", 1)),
        ("growth %", _number("growth", 1, 100)),
        ("warm child MiB", _number("warm_child_mib", 1)),
        ("running child MiB", _number("running_child_mib", 1)),
        _ENGINE_CPU,
    ],
    "W8": [
        ("workers", _number("workers")),
        ("jobs/s", _number("jobs_per_second")),
        ("x 1 worker", _number("vs_one_worker", 2)),
        ("seconds", _number("seconds", 2)),
        ("start-up s", _number("startup_seconds", 2)),
        ("workers seen running", _number("workers_seen_running")),
        ("completed", _number("completed")),
        _ENGINE_CPU,
    ],
}

_TITLES = {
    "W1": "W1 overhead: no-op jobs, concurrency 16, no rate limit",
    "W2": "W2 I/O efficiency: sleep jobs of 10 ms, concurrency 50",
    "W3": "W3 start latency (batchyard: process/all to first frame; peers: enqueue to start)",
    "W4": "W4 rate accuracy: 20 starts per 2 s",
    "W5": "W5 shutdown accuracy: SIGTERM with jobs in flight",
    "W6": "W6 fan-out: WebSocket subscribers on one batch",
    "W7": "W7 memory",
    "W8": "W8 scale-out: W1's no-op jobs over many batches, 1, 2, 3 `batchyard worker`s on Redis",
}


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _table(results: Sequence[Result], workload: str) -> list[str]:
    columns = _COLUMNS[workload]
    lines = [
        _row(["system", *(name for name, _ in columns), "configuration"]),
        _row(["---"] * (len(columns) + 2)),
    ]
    for result in results:
        if result.workload != workload:
            continue
        values = (
            [cell(result) for _, cell in columns] if result.status == "ok" else [""] * len(columns)
        )
        lines.append(_row([result.system, *values, result.config or _status(result)]))
    return lines


# The side-by-side table: (column, workload, metric, digits), read from each
# system's result; batchyard's single-job start is its warm-child W3 run.
_SIDE_BY_SIDE = (
    ("W1 no-op jobs/s", "W1", "jobs_per_second", 0),
    ("W1 engine CPU s / 1k jobs", "W1", "engine_cpu_seconds_per_1000_jobs", 3),
    ("W2 efficiency", "W2", "efficiency", 2),
    ("single-job start p50 ms", "W3", "job_start_p50_ms", 1),
    ("W4 max starts in a window", "W4", "max_in_window", 0),
    ("W4 fraction of limit", "W4", "fraction_of_limit", 3),
)
_ALIASES = {"batchyard (warm child)": "batchyard"}


def side_by_side_table(report: Report) -> list[str]:
    """One row per system, one column per shared measurement."""
    cells: dict[str, dict[str, str]] = {}
    for result in report.results:
        system = _ALIASES.get(result.system, result.system)
        if result.status != "ok" or system.startswith("floor"):
            continue
        for column, workload, metric, digits in _SIDE_BY_SIDE:
            value = result.metric(metric)
            if result.workload == workload and value is not None:
                cells.setdefault(system, {})[column] = f"{value:,.{digits}f}"
    columns = [column for column, *_ in _SIDE_BY_SIDE]
    lines = [_row(["system", *columns]), _row(["---"] * (len(columns) + 1))]
    for system, values in cells.items():
        if any(column in values for column in columns):
            lines.append(_row([system, *(values.get(column, "-") for column in columns)]))
    return lines


def summary_table(report: Report) -> list[str]:
    """The targets as one table: what each asks, the verdict, the numbers."""
    lines = [_row(["", "target", "verdict", "measured"]), _row(["---"] * 4)]
    for target in report.targets:
        verdict = {"met": "met", "missed": "**missed**"}.get(target.verdict, target.verdict)
        lines.append(_row([target.workload, target.goal, verdict, target.measured]))
    return lines


def _skips(results: Sequence[Result]) -> list[str]:
    lines = []
    for result in results:
        if result.status != "ok":
            lines.append(f"- {result.workload} {result.system}: {result.status}, {result.reason}")
    return lines or ["- none"]


def render_markdown(report: Report) -> str:
    """The whole ``latest.md``."""
    machine = report.machine
    lines = [
        f"# batchyard bench ({report.mode})",
        "",
        f"Run {report.started_at}, {report.duration_seconds:,.0f} s; store: {report.store}.",
        f"Machine: {machine.cpu}, {machine.cores} cores, {machine.memory_gib:.0f} GiB, "
        f"{machine.system}, Python {machine.python}.",
        "",
        "## Side by side",
        "",
        *side_by_side_table(report),
        "",
        f"W4's limit: {report.sizes.get('w4_limit', 0):g} starts per "
        f"{report.sizes.get('w4_window_seconds', 0):g} s, only for systems with a rate limiter. "
        "Each system's configuration is in the tables below; batchyard's W1 runs behind its "
        "server with a WebSocket watcher. W1 and W2 run, for every system, from the first "
        "job's start to the last job's end (batchyard's: the arrival of its terminal event "
        "at the watcher; 'end to end' adds the run's start and end). Engine CPU: user + "
        "system seconds of the engine's process and its children over the measured span, per "
        "1,000 jobs (W5: up to SIGTERM; W7: adding the pending jobs).",
        "",
        "## Targets",
        "",
        *summary_table(report),
    ]
    results = report.results
    for workload, title in _TITLES.items():
        if any(r.workload == workload for r in results):
            lines += ["", f"## {title}", "", *_table(results, workload)]
            notes = [n for r in results if r.workload == workload for n in r.notes]
            lines += [""] + [f"- {note}" for note in notes] if notes else []
    lines += ["", "## Skipped or failed", "", *_skips(results)]
    lines += ["", "## Sizes and caps", ""]
    lines += [f"- {cap}" for cap in report.caps]
    sizes = ", ".join(f"{k}={v:g}" for k, v in report.sizes.items())
    lines += [f"- sizes: {sizes}"]
    lines += ["", "## Notes", "", *(f"- {note}" for note in report.notes)]
    if report.charts:
        lines += ["", "## Charts", ""]
        lines += [f"![{name}]({name})" for name in report.charts]
    lines += ["", "## Versions", ""]
    lines += [f"- {name} {version}" for name, version in report.versions.items()]
    return "\n".join(lines) + "\n"
