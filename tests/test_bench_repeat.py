"""W1's and W2's repeats (``bench.repeat``): the median run, with every
run's figure kept beside it."""

from __future__ import annotations

import pytest

from bench.model import Result
from bench.repeat import median_run


def _run(rate: float, cpu: float, efficiency: float = 0.5) -> Result:
    return Result(
        workload="W1",
        system="peer",
        config="",
        metrics={"jobs_per_second": rate, "engine_cpu_seconds": cpu, "efficiency": efficiency},
    )


def test_the_median_run_is_reported_with_its_own_metrics_and_every_rate() -> None:
    result = median_run([_run(900.0, 1.0), _run(1_200.0, 2.0), _run(1_000.0, 3.0)])
    assert result.metrics == {
        "jobs_per_second": 1_000.0,
        "engine_cpu_seconds": 3.0,
        "efficiency": 0.5,
        "jobs_per_second_run_1": 900.0,
        "jobs_per_second_run_2": 1_200.0,
        "jobs_per_second_run_3": 1_000.0,
    }
    assert result.notes == (
        "peer: W1 is the median of 3 runs (jobs per second 900 / 1,200 / 1,000, in order)",
    )


def test_the_median_may_be_taken_of_another_metric() -> None:
    runs = [_run(1.0, 1.0, 0.7), _run(2.0, 2.0, 0.9), _run(3.0, 3.0, 0.8)]
    result = median_run(runs, "efficiency")
    assert result.metric("engine_cpu_seconds") == 3.0
    assert result.metric("efficiency_run_2") == 0.9
    assert result.notes == (
        "peer: W1 is the median of 3 runs (efficiency 0.700 / 0.900 / 0.800, in order)",
    )


def test_of_an_even_number_the_lower_middle_run_is_reported() -> None:
    runs = [_run(4.0, 0.0), _run(1.0, 0.0), _run(3.0, 0.0), _run(2.0, 0.0)]
    assert median_run(runs).metric("jobs_per_second") == 2.0


def test_a_single_run_is_reported_as_it_is() -> None:
    run = _run(5.0, 1.0)
    assert median_run([run]) is run


def test_no_run_is_refused() -> None:
    with pytest.raises(ValueError, match="no runs"):
        median_run([])
