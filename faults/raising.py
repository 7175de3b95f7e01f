"""A store that raises on every write for a while, on any machine.

What ``sqlite-disk`` does with a real full filesystem (which needs root to
mount), this does with the harness's ``FailingStore``: an engine served in
this process on an SQLite store whose writing calls raise
``StoreUnavailable`` (what the SQLite store raises on a full disk) for 3 s
mid-run, its children real processes. Reads and pings still answer, as they
do on a full disk.

While writes fail ``/health`` must say ``degraded`` at least once and a
batch creation must get a JSON error body; afterwards every job completes,
none fails or is lost, and ``/health`` is ``ok`` again.
"""

from __future__ import annotations

from engine.store import open_store
from engine.testing import FailingStore, open_test_server, settings_for_tests
from faults.api import Api
from faults.disk import expect_phase, run_phase
from faults.report import Outcome
from faults.scenario import Run, Scenario

__all__ = ["SCENARIO"]

#: The ``Store`` calls that write.
WRITES = (
    "create_batch",
    "delete_batch",
    "add_jobs",
    "claim_jobs",
    "apply",
    "retry_failed",
    "renew_leases",
    "heartbeat",
    "acquire_run",
    "release_run",
    "take_rate",
    "delay_rate",
    "take_slot",
    "release_slots",
    "renew_slots",
)


async def _raising(run: Run, outcome: Outcome) -> None:
    changes = {"job_max_attempts": 1, "warm_children": 0, "shutdown_grace_seconds": 2.0}
    settings = settings_for_tests(run.workdir, **changes)
    async with open_store(settings.store_url) as real_store:
        store = FailingStore(real_store)
        async with (
            open_test_server(run.workdir, store=store, **changes) as (_, url),
            Api(url) as api,
        ):
            await run_phase(
                api,
                "writes",
                lambda: store.fail(*WRITES),
                lambda: store.recover(),
                outcome.figures,
            )
        outcome.figures["failed_calls"] = store.failed_calls
    expect_phase(outcome, "writes")


SCENARIO = Scenario("store-raises", _raising, limit_seconds=120)
