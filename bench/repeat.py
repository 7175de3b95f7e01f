"""W1's and W2's repeats: the median run out of several.

Design notes
------------
A full-size W1 run lasts about a second for the fastest systems and a W2
run a quarter of one, and on a shared 2-core machine one such run can read
a quarter faster or slower than the next, for batchyard and for its peers
alike. So every system's W1 and W2 are measured ``Sizes.w1_w2_runs``
times in a row, each run as the first one is (a fresh store, server,
worker or queue), and the run of median jobs/s (W2: of median efficiency,
the same order) is the result: its every metric (CPU, submit time) comes
from that one run. Every run's figure is kept beside it, as
``jobs_per_second_run_1`` (W2: ``efficiency_run_1``) and on, and in a
note, so the spread is part of the results. A run that fails fails the
whole measurement, as a single run would.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from bench.model import Result

__all__ = ["median_run"]


def median_run(runs: Sequence[Result], metric: str = "jobs_per_second") -> Result:
    """The run of ``runs`` (of one system on one workload, at least one)
    with the median ``metric`` (the lower middle one of an even number),
    with every run's ``metric`` in its metrics and a note."""
    if not runs:
        raise ValueError("no runs to choose from")
    ranked = sorted(runs, key=lambda run: run.metric(metric) or 0.0)
    median = ranked[(len(ranked) - 1) // 2]
    if len(runs) == 1:
        return median
    values = [run.metric(metric) or 0.0 for run in runs]
    each = {f"{metric}_run_{n}": value for n, value in enumerate(values, start=1)}
    listed = " / ".join(f"{value:,.0f}" if value >= 100 else f"{value:.3f}" for value in values)
    note = (
        f"{median.system}: {median.workload} is the median of {len(runs)} runs"
        f" ({metric.replace('_', ' ')} {listed}, in order)"
    )
    return attrs.evolve(median, metrics={**median.metrics, **each}, notes=(*median.notes, note))
