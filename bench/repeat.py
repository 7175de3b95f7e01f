"""W1's repeats: the run of median throughput out of several.

Design notes
------------
A W1 run of the full sizes lasts about a second for the fastest systems,
and on a shared 2-core machine one such run can read a quarter faster or
slower than the next, for batchyard and for its peers alike. So every
system's W1 is measured ``Sizes.w1_runs`` times in a row, each run as the
first one is (a fresh store, server, worker or queue), and the run of
median jobs/s is the result: its every metric (CPU, submit time) comes from
that one run. The other runs' jobs/s are kept beside it, as
``jobs_per_second_run_1`` and on, and in a note, so the spread is part of
the results. A run that fails fails the whole measurement, as a single run
would.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from bench.model import Result

__all__ = ["median_run"]


def median_run(runs: Sequence[Result]) -> Result:
    """The run of ``runs`` (of one system on one workload, at least one)
    with the median ``jobs_per_second`` (the lower middle one of an even
    number), with every run's jobs/s in its metrics and a note."""
    if not runs:
        raise ValueError("no runs to choose from")
    ranked = sorted(runs, key=lambda run: run.metric("jobs_per_second") or 0.0)
    median = ranked[(len(ranked) - 1) // 2]
    if len(runs) == 1:
        return median
    rates = [run.metric("jobs_per_second") or 0.0 for run in runs]
    each = {f"jobs_per_second_run_{n}": rate for n, rate in enumerate(rates, start=1)}
    listed = " / ".join(f"{rate:,.0f}" for rate in rates)
    note = f"{median.system}: W1 is the median of {len(runs)} runs ({listed} jobs/s, in order)"
    return attrs.evolve(median, metrics={**median.metrics, **each}, notes=(*median.notes, note))
