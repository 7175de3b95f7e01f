"""CPU seconds a process and its descendants have used: what a workload costs
apart from its wall time.

Design notes
------------
``tree_cpu_seconds`` is the user + system time of a process, including every
descendant it has already waited for (the kernel adds a reaped child's time,
and that child's own reaped children, to its parent's ``children_*``
times), plus the same for each descendant still alive. That sum only grows,
and the difference of two readings is exactly what the tree used in
between: a batch child that ran and was reaped in between is counted
through its parent, one still alive through itself, and a warm child that
was already alive at the first reading only for what it used after it.

A workload reads it just before the measured part starts and just after it
ends. When the engine runs in the bench process, the bench's other
subprocesses (W6's client processes) are passed as ``exclude`` and must
still be alive at both readings: once reaped, their time is in the bench
process's ``children_*`` and cannot be told apart.
"""

from __future__ import annotations

from collections.abc import Collection

import psutil  # type: ignore[import-untyped]

__all__ = ["per_thousand_jobs", "process_cpu_seconds", "tree_cpu_seconds"]


def process_cpu_seconds(process: psutil.Process) -> float:
    """User + system seconds of ``process`` and of the children it has reaped.

    Raises:
        psutil.NoSuchProcess: it has exited.
    """
    times = process.cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def tree_cpu_seconds(pid: int, exclude: Collection[int] = ()) -> float:
    """CPU seconds used so far by process ``pid`` and its descendants, leaving
    out the live descendants in ``exclude`` (and theirs).

    A child reaped while its live siblings are read would be counted twice
    or not at all, so the reading is taken again until the root's reaped
    total held still around it.

    Raises:
        psutil.NoSuchProcess: ``pid`` has exited.
    """
    root = psutil.Process(pid)
    while True:
        before = root.cpu_times()
        live = _live_descendants_cpu_seconds(root, set(exclude))
        after = root.cpu_times()
        reaped = after.children_user + after.children_system
        if reaped == before.children_user + before.children_system:
            return float(after.user + after.system + reaped) + live


def _live_descendants_cpu_seconds(root: psutil.Process, skipped: set[int]) -> float:
    total = 0.0
    # Listed parents first, so a skipped process's children are skipped too.
    for child in root.children(recursive=True):
        try:
            if child.pid in skipped or child.ppid() in skipped:
                skipped.add(child.pid)
                continue
            total += process_cpu_seconds(child)
        except psutil.NoSuchProcess:
            # Gone and reaped between the listing and the reading: the root's
            # reaped total moved, and the caller reads again.
            continue
    return total


def per_thousand_jobs(seconds: float, jobs: int) -> float:
    """``seconds`` of CPU per 1,000 of ``jobs`` (at least one)."""
    return seconds * 1000 / jobs
