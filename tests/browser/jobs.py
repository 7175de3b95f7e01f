"""A job type for the browser tests, loaded with ``--jobs tests.browser.jobs``.

``fails-first-run`` fails the first time it runs for a job and succeeds
after, whatever the job's attempts say (retrying a batch resets them): it
leaves a marker named after the job in the payload's ``dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import JobContext, job_type


@job_type("fails-first-run")
def fails_first_run(payload: Any, ctx: JobContext) -> str:
    marker = Path(payload["dir"]) / ctx.job_id
    if not marker.exists():
        marker.touch()
        raise RuntimeError("the first run of this job fails on purpose")
    return "second run"
