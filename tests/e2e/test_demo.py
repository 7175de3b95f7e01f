"""``batchyard demo`` runs end to end as a user would run it."""

from __future__ import annotations

import os
import re
import sys

import trio


def _row(table: str, name: str) -> str:
    match = re.search(rf"{name}\s*│\s*(\S+)", table)
    assert match, f"no {name!r} row in:\n{table}"
    return match.group(1)


async def test_demo_runs_both_batches_and_prints_a_summary() -> None:
    with trio.fail_after(120):
        result = await trio.run_process(
            [sys.executable, "-m", "engine", "demo"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, "COLUMNS": "100"},
        )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "demo-1" in out and "demo-2" in out
    assert _row(out, "completed") == "400"
    assert _row(out, "failed") == "0"
    assert float(_row(out, "throughput")) > 0
