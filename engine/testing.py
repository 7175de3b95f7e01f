"""Fault injection and test support, shared by ``tests/`` and ``bench/``.

Importing this module registers two job types that no production engine
has unless ``engine.testing`` is listed in ``BATCHYARD_JOBS``:

* ``crash`` (``{"exitCode": int}``): the child process exits at once with
  that code, as a segfaulting extension or an OOM kill would end it;
* ``hang`` (``{"seconds": float}``): blocks the child's main thread, deaf to
  cancellation and to the shutdown message, as a stuck C call would.

No runtime module imports this one.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from engine.bus import Subscription
from engine.engine import Engine, JobRequest, open_engine
from engine.jobs import JobContext, job_type
from engine.settings import RateLimit, Settings
from protocols.events import Event

__all__ = [
    "collect_until",
    "crash",
    "hang",
    "jobs_of",
    "open_test_engine",
    "steps",
    "test_settings",
]


@job_type("crash")
async def crash(payload: Any, ctx: JobContext) -> None:
    """Ends the child process at once with ``exitCode`` (default 3)."""
    code = payload.get("exitCode", 3) if isinstance(payload, dict) else 3
    os._exit(code if isinstance(code, int) else 3)


@job_type("hang")
async def hang(payload: Any, ctx: JobContext) -> None:
    """Blocks the child's main thread for ``seconds``, ignoring cancellation."""
    seconds = payload.get("seconds", 3600) if isinstance(payload, dict) else 3600
    time.sleep(float(seconds))  # noqa: ASYNC251 - blocking on purpose


def test_settings(tmp_path: Path, **changes: Any) -> Settings:
    """Settings for a test engine: a store in ``tmp_path``, no rate limit,
    the fault types loaded, and whatever ``changes`` say."""
    base: dict[str, Any] = {
        "store_url": f"sqlite:///{tmp_path / 'batchyard.db'}",
        "rate_limit": RateLimit(count=0, per_seconds=60),
        "job_modules": ("engine.testing",),
        "shutdown_grace_seconds": 5.0,
    }
    base.update(changes)
    return Settings(**base)


@asynccontextmanager
async def open_test_engine(tmp_path: Path, **changes: Any) -> AsyncIterator[Engine]:
    """An engine on ``test_settings(tmp_path, **changes)``."""
    async with open_engine(test_settings(tmp_path, **changes)) as engine:
        yield engine


def jobs_of(type: str, payloads: Sequence[Any]) -> list[JobRequest]:
    """One job request of ``type`` per payload."""
    return [JobRequest(type=type, payload=payload) for payload in payloads]


async def collect_until(
    subscription: Subscription, last: Callable[[Event], bool] = lambda e: e.event == "done"
) -> list[Event]:
    """Events of ``subscription`` up to and including the first ``last`` one.

    Cancellation: atomic per event; the caller bounds it with a timeout.
    """
    seen: list[Event] = []
    async for event in subscription:
        seen.append(event)
        if last(event):
            return seen
    return seen


@job_type("steps")
def steps(payload: Any, ctx: JobContext) -> int:
    """A plain ``def`` handler that reports progress ``steps`` times."""
    count = payload.get("steps", 4) if isinstance(payload, dict) else 4
    for step in range(1, count + 1):
        ctx.report_progress(100 * step / count)
    return int(count)
