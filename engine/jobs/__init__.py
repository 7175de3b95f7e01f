"""Job types: the registry, the ``job_type`` decorator, the handler context,
and the built-in types (``engine.jobs.builtins``, always loaded)."""

from __future__ import annotations

from engine.jobs.registry import (
    REGISTRY,
    JobContext,
    JobRegistry,
    JobType,
    call_handler,
    job_type,
    load_job_modules,
)

__all__ = [
    "REGISTRY",
    "JobContext",
    "JobRegistry",
    "JobType",
    "call_handler",
    "job_type",
    "load_job_modules",
]
