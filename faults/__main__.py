"""``python -m faults [--quick] [--rounds N] [--seconds S] [SCENARIO...]``:
runs the scenarios (all, or those named) one after the other, prints one
summary line each, and exits 1 when any missed (2 on bad arguments)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import trio

from faults.catalogue import SCENARIOS
from faults.engines import end_leftovers, leftovers
from faults.report import Outcome
from faults.scenario import Run, Scenario


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m faults", description=__doc__)
    parser.add_argument(
        "scenarios",
        nargs="*",
        choices=[[], *SCENARIOS],
        metavar="SCENARIO",
        help=f"run only these ({', '.join(SCENARIOS)})",
    )
    parser.add_argument("--quick", action="store_true", help="a short version of each")
    parser.add_argument("--rounds", type=int, help="rounds of each scenario that has rounds")
    parser.add_argument("--seconds", type=float, help="length of each timed scenario")
    return parser.parse_args(argv)


async def run_scenario(scenario: Scenario, run: Run) -> Outcome:
    """``scenario`` within its bound; whatever it raised, and any process
    it left behind, is a miss. Processes that were running before it (a
    test's own servers) are not its to end."""
    existing = {process.pid for process in leftovers()}
    outcome = Outcome(scenario.name)
    begun = time.monotonic()
    try:
        with trio.fail_after(scenario.limit_seconds):
            await scenario.body(run, outcome)
    except Exception as exc:  # a scenario that broke is a miss, not a crash of the runner
        traceback.print_exception(exc, file=sys.stderr)
        outcome.misses += [f"raised {_described(leaf)}" for leaf in _leaves(exc)]
    killed = await end_leftovers(existing=existing)
    outcome.expect(not killed, f"processes left behind: {killed}")
    outcome.figures.setdefault("seconds", time.monotonic() - begun)
    return outcome


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _described(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


async def _main(options: argparse.Namespace) -> int:
    chosen = options.scenarios or list(SCENARIOS)
    failed = 0
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix=f"batchyard-faults-{name}-") as folder:
            run = Run(Path(folder), options.quick, options.rounds, options.seconds)
            outcome = await run_scenario(SCENARIOS[name], run)
        print(outcome.line(), flush=True)
        failed += not outcome.passed
    print(f"{len(chosen) - failed} of {len(chosen)} scenarios passed", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    return trio.run(_main, _arguments(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
