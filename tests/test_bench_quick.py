"""``python -m bench --quick`` runs every batchyard workload and writes a
report that reads back field by field. It checks that the harness works,
never how fast anything is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.model import validate_report
from bench.registry import PEERS, WORKLOADS

REPO = Path(__file__).resolve().parents[1]

#: The quick mode takes about 30 s here; the margin is for a loaded CI machine.
TIMEOUT_SECONDS = 240


@pytest.mark.slow
def test_quick_bench_writes_a_valid_report(tmp_path: Path) -> None:
    out = tmp_path / "results"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--peers", "none", "--out", str(out)],
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
    for result in report.results:
        if result.system.startswith("batchyard"):
            assert result.status == "ok"
            assert result.metrics, result
    assert {r.system for r in report.results if r.status == "skipped"} == {p.name for p in PEERS}
    assert report.targets
    assert (out / "latest.md").read_text().startswith("# batchyard bench (quick)")
    if report.charts:
        assert all((out / name).stat().st_size > 0 for name in report.charts)
    else:
        assert any("matplotlib" in note for note in report.notes)
