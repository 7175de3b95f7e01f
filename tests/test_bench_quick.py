"""``python -m bench --quick`` runs every batchyard workload and writes a
report that reads back field by field. It checks that the harness works,
never how fast anything is.

W8 (scale-out) runs its workers on a private ``redis-server`` when the binary
is here (``tests.redis_server``: never the server on 6379); without it, it is
pointed at a port where nothing listens and must be skipped with the reason,
not crash. Under ``CI=true`` a missing binary fails the test instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.model import Report, validate_report
from bench.registry import PEERS, WORKLOADS
from tests import redis_server

REPO = Path(__file__).resolve().parents[1]

#: The quick mode takes about 30 s here; the margin is for a loaded CI machine.
TIMEOUT_SECONDS = 240


@pytest.fixture
def scale_out_redis(tmp_path: Path) -> Iterator[str | None]:
    """W8's Redis URL, or None when there is no redis-server to start."""
    if shutil.which(redis_server.REDIS_SERVER) is None and os.environ.get("CI") != "true":
        yield None
        return
    port = redis_server.free_port()
    with redis_server.running_redis(tmp_path, port):
        yield f"redis://127.0.0.1:{port}/9"


def _check_scale_out(report: Report, redis_url: str | None) -> None:
    runs = [r for r in report.results if r.workload == "W8"]
    if redis_url is None:
        assert [(r.status, r.system) for r in runs] == [("skipped", "batchyard")]
        assert runs[0].reason is not None and "no Redis" in runs[0].reason
        return
    assert [r.metric("workers") for r in runs] == [1, 2]
    for run in runs:
        assert run.metric("completed") == report.sizes["w1_jobs"]
        assert (run.metric("jobs_per_second") or 0) > 0


@pytest.mark.slow
def test_quick_bench_writes_a_valid_report(tmp_path: Path, scale_out_redis: str | None) -> None:
    out = tmp_path / "results"
    # Without a Redis server, a port nothing listens on: W8 must say so.
    scale_out_store = scale_out_redis or f"redis://127.0.0.1:{redis_server.free_port()}/9"
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--quick", "--peers", "none", "--out", str(out)),
            *("--scale-out-store", scale_out_store),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr

    report = validate_report(json.loads((out / "latest.json").read_text()))
    assert report.mode == "quick"
    ran = {r.workload for r in report.results if r.system.startswith("batchyard")}
    assert ran == {w.key for w in WORKLOADS}
    broken = [r for r in report.results if r.status == "failed"]
    assert not broken, broken
    _check_scale_out(report, scale_out_redis)
    for result in report.results:
        if result.system.startswith("batchyard") and result.workload != "W8":
            assert result.status == "ok"
            assert result.metrics, result
    assert {r.system for r in report.results if r.status == "skipped"} == {p.name for p in PEERS}
    assert report.targets
    assert (out / "latest.md").read_text().startswith("# batchyard bench (quick)")
    if report.charts:
        assert all((out / name).stat().st_size > 0 for name in report.charts)
    else:
        assert any("matplotlib" in note for note in report.notes)
