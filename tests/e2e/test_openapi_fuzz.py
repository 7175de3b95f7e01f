"""schemathesis, every check, against a real ``batchyard serve`` and its own
``/openapi.json``: whatever the document allows the server accepts, whatever
it forbids the server refuses, and every answer is one the document lists.

The server runs with a token, so the 401s and the ``ignored_auth`` check
are part of the run. Examples are bounded per operation; the run's figures
are printed (``pytest -s``) and a failure shows schemathesis's own report,
with its seed and a ``curl`` line for each disagreement.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.e2e.processes import run_engine

pytestmark = pytest.mark.slow

_CONFIG = Path(__file__).with_name("schemathesis.toml")
_TOKEN = "schemathesis-token"
_EXAMPLES_PER_OPERATION = 12


async def test_schemathesis_finds_no_failure(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    store = f"sqlite:///{tmp_path / 'batchyard.db'}"
    async with run_engine("serve", store, BATCHYARD_TOKEN=_TOKEN) as server:
        argv = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(_CONFIG),
            "--no-color",
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(_EXAMPLES_PER_OPERATION),
            "--workers",
            "1",
            "--request-timeout",
            "5",
            "--header",
            f"Authorization: Bearer {_TOKEN}",
            "--generation-database",
            "none",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ]
        with trio.fail_after(600):
            run = await trio.run_process(  # in tmp_path: it keeps a cache where it runs
                argv, capture_stdout=True, stderr=subprocess.STDOUT, check=False, cwd=tmp_path
            )
    output = run.stdout.decode(errors="replace")
    assert run.returncode == 0, output[-20000:]
    figures = json.loads(report.read_text())  # its seed exceeds 64 bits
    cases, operations = figures["test_cases"], figures["operations"]
    print(
        f"schemathesis: {operations['tested']}/{operations['total']} operations, "
        f"{cases['generated']} test cases, {cases['with_failures']} with failures, "
        f"{len(figures['errors'])} errors, seed {figures['seed']}"
    )
    assert operations["tested"] == operations["total"] >= 17
    assert cases["generated"] >= 10 * operations["total"]
    assert (cases["with_failures"], figures["failures"], figures["errors"]) == (0, [], [])
