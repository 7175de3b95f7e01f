"""Job types that report what a child process sees, registered with the
fault types wherever ``engine.testing`` is imported.

* ``environment`` (``{"names": [str, ...]}``): the child's environment
  variables of those names that it has (absent ones are left out), and
  every variable's value, under ``"values"``, so a test can look for a
  secret under any name.
"""

from __future__ import annotations

import os
from typing import Any

from engine.jobs.registry import JobContext, job_type

__all__ = ["environment"]


@job_type("environment")
async def environment(payload: Any, ctx: JobContext) -> dict[str, Any]:
    names = payload.get("names", []) if isinstance(payload, dict) else []
    return {
        "named": {name: os.environ[name] for name in names if name in os.environ},
        "values": sorted(os.environ.values()),
    }
