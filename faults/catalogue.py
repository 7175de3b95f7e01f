"""Every scenario of the suite, by name, in the order a full run takes them."""

from __future__ import annotations

from faults import crashes, disk, kills, load, outage, partition, pipes, raising, terms
from faults.scenario import Scenario

__all__ = ["SCENARIOS"]

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        crashes.SCENARIO,
        kills.SCENARIO,
        kills.SCENARIO_REDIS,
        terms.SCENARIO,
        pipes.SCENARIO,
        disk.SCENARIO,
        raising.SCENARIO,
        outage.SCENARIO,
        partition.SCENARIO,
        load.SCENARIO,
    )
}
