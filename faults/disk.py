"""SQLite on a filesystem that fills up, then turns read-only.

The store lives on a small tmpfs of its own (mounting one needs root; where
the machine does not allow it the scenario says so in its figures and checks
nothing). Two phases, each on a running batch of short ``sleep`` jobs:

* full: a filler file takes every free byte; for 3 s the scenario asks
  ``/health`` and tries to add a batch, then deletes the filler;
* read-only: the engine is stopped, the filesystem remounted read-only
  (Linux refuses that while a file on it is open for writing, so a running
  engine cannot be caught by it), and an engine started on the read-only
  file: it must refuse to start with a line saying why, or serve with
  ``/health`` degraded. Then the filesystem is read-write again and an
  engine started on it runs the batch added before, to its end.

While the disk is full ``/health`` must say ``degraded`` (503) at least
once and a batch creation must get a JSON error body (never a 500 without
one); afterwards every job of the batch completes, none fails, none is lost,
and ``/health`` is ``ok`` again.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trio

from faults.api import Api, jobs_of
from faults.engines import open_engines
from faults.report import Outcome
from faults.scenario import Run, Scenario
from faults.waiting import poll_until

__all__ = ["SCENARIO", "expect_phase", "run_phase"]

_JOBS = 150
_FAULT_SECONDS = 3.0
Figures = dict[str, Any]
_ENV = {"JOB_MAX_ATTEMPTS": "1", "WARM_CHILDREN": "0"}


def _mount(*words: str) -> None:
    subprocess.run(["mount", *words], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def _small_filesystem(path: Path) -> Iterator[bool]:
    """A 4 MiB tmpfs at ``path``; yields whether it could be mounted."""
    path.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path))
    except (OSError, subprocess.CalledProcessError):
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def _fill(path: Path) -> None:
    """Write ``path`` until the filesystem has no byte left."""
    block = b"\0" * 65536
    with path.open("wb", buffering=0) as filler:
        while True:
            try:
                filler.write(block)
            except OSError:
                block = block[: len(block) // 2]
                if not block:
                    return


async def _during_fault(api: Api, label: str, figures: Figures) -> None:
    """Ask ``/health`` and try to add a batch while the fault lasts."""
    degraded = 0
    create: list[str] = []
    with trio.move_on_after(_FAULT_SECONDS):
        for attempt in range(10_000):
            status, body = await api.health()
            degraded += status == 503 and body["status"] == "degraded"
            if attempt % 10 == 0:
                response = await api.call(
                    "POST", "/api/batches", json={"type": "noop", "jobs": [{"payload": None}]}
                )
                code = response.json().get("error", {}).get("code", "none")
                create.append(f"{response.status_code}/{code}")
            await trio.sleep(0.05)
    figures[f"{label}_health_degraded"] = degraded
    figures[f"{label}_create_answers"] = ",".join(sorted(set(create)))


async def run_phase(
    api: Api, label: str, fault: Callable[[], object], heal: Callable[[], object], figures: Figures
) -> None:
    """A batch of short jobs started; ``fault()`` once jobs complete, 3 s of
    asking ``/health`` and trying to add a batch, ``heal()``; then the batch
    to its end. Its figures are named ``{label}_...``."""
    await api.create(label, jobs_of("sleep", [{"seconds": 0.02}] * _JOBS))
    await api.start(label)

    async def working() -> bool:
        return bool((await api.batch(label))["counts"]["completed"] > 0)

    await poll_until(working, 30)
    fault()
    try:
        await _during_fault(api, label, figures)
    finally:
        heal()
    await api.wait_idle(label, timeout=90)
    counts, _ = await api.ledger(label)
    figures[f"{label}_completed"] = f"{counts['completed']}/{_JOBS}"
    figures[f"{label}_lost_or_failed"] = _JOBS - counts["completed"] - counts["pending"]
    figures[f"{label}_stuck_pending"] = counts["pending"]

    async def healthy() -> bool:
        return (await api.health())[0] == 200

    figures[f"{label}_health_back"] = await poll_until(healthy, 10)


async def _disk(run: Run, outcome: Outcome) -> None:
    mount = run.workdir / "disk"
    with _small_filesystem(mount) as mounted:
        if not mounted:
            outcome.figures["tmpfs"] = "not allowed here; nothing checked (see store-raises)"
            return
        filler = mount / "filler"
        figures = outcome.figures
        store = f"sqlite:///{mount / 'store.db'}"
        async with open_engines() as engines:
            engine = await engines.start("serve", store, **_ENV)
            async with Api(engine.url) as api:
                await run_phase(api, "full", lambda: _fill(filler), filler.unlink, figures)
                await api.create("after", jobs_of("sleep", [{"seconds": 0.02}] * _JOBS))
            figures["full_engine_alive"] = engine.process.returncode is None
            store_lines = [line for line in engine.lines if "store" in line.lower()]
            figures["full_store_log_lines"] = len(store_lines)
            await engine.signal_and_wait(signal.SIGTERM)
            _mount("-o", "remount,ro", str(mount))
            try:
                refused = await engines.start("serve", store, **_ENV)
                figures["readonly_start"] = "served"
                async with Api(refused.url) as api:
                    status, body = await api.health()
                    figures["readonly_health"] = f"{status}/{body['status']}"
                await refused.kill()
            except RuntimeError:
                last = engines.started[-1].lines[-1:] or ["(nothing)"]
                figures["readonly_start"] = f"refused: {last[0][:160]!r}"
            finally:
                _mount("-o", "remount,rw", str(mount))
            engine = await engines.start("serve", store, **_ENV)
            async with Api(engine.url) as api:
                await api.start("after")
                await api.wait_idle("after", timeout=90)
                counts, _ = await api.ledger("after")
                figures["after_completed"] = f"{counts['completed']}/{_JOBS}"
                figures["after_health"] = (await api.health())[1]["status"]
    expect_phase(outcome, "full")
    outcome.expect(figures["full_engine_alive"], "full: the engine died")
    readonly = str(figures["readonly_start"])
    outcome.expect(
        readonly.startswith("refused") or figures.get("readonly_health") == "503/degraded",
        "read-only: the engine neither refused to start nor reported degraded",
    )
    outcome.expect(figures["after_completed"] == f"{_JOBS}/{_JOBS}", "after: jobs not done")
    outcome.expect(figures["after_health"] == "ok", "after: /health not ok")


def expect_phase(outcome: Outcome, label: str) -> None:
    """The misses of a ``run_phase``."""
    figures = outcome.figures
    outcome.expect(figures[f"{label}_health_degraded"] > 0, f"{label}: /health never degraded")
    outcome.expect(
        "500/none" not in figures[f"{label}_create_answers"], f"{label}: a create got a bare 500"
    )
    outcome.expect(figures[f"{label}_lost_or_failed"] == 0, f"{label}: jobs lost or failed")
    outcome.expect(figures[f"{label}_stuck_pending"] == 0, f"{label}: jobs left pending")
    outcome.expect(figures[f"{label}_health_back"], f"{label}: /health not ok again")


SCENARIO = Scenario("sqlite-disk", _disk, limit_seconds=300)
