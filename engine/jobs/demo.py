"""The job type of ``batchyard demo``, registered only when a settings'
``job_modules`` names this module (the demo's do).

``demo-crash-once`` ends its child process on the job's first attempt, the
way a segfaulting library would, and returns on the next one: the demo shows
the engine restarting the child and the job succeeding on its retry.
"""

from __future__ import annotations

import os
from typing import Any

from engine.jobs.registry import JobContext, job_type

__all__ = ["crash_once"]

CRASH_EXIT_CODE = 70


@job_type("demo-crash-once")
async def crash_once(payload: Any, ctx: JobContext) -> str:
    """Exits the child with ``CRASH_EXIT_CODE`` on attempt 1; then returns."""
    if ctx.attempt == 1:
        os._exit(CRASH_EXIT_CODE)
    return f"survived on attempt {ctx.attempt}"
