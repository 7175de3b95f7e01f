"""The status line: every ``STATUS_LOG_SECONDS`` the engine logs what it
runs and how the jobs of the store stand, per job type.

One INFO line on the logger ``batchyard.status``::

    status: running 2 of 2 (b1, b2); echo: pending 10, active 2, completed 30, failed 1; ...

"running" is this engine's runs out of ``MAX_ACTIVE_BATCHES``; the counts
are the store's (every engine of the cluster), from one
``Store.counts_by_type``: each job under its own type, whatever its
batch's, from counters the store keeps, so a line costs no scan of jobs.
A store that does not answer makes the line say so instead; the next one
tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from engine.core.engine import Engine
from engine.errors import StoreError
from engine.store import Counts

__all__ = ["serve_status_log", "status_line"]

log = logging.getLogger("batchyard.status")

_STATES = ("pending", "active", "completed", "failed")


def status_line(running: tuple[str, ...], capacity: int, per_type: Mapping[str, Counts]) -> str:
    """The status line for this engine's ``running`` batches out of
    ``capacity``, and the store's jobs ``per_type``."""
    names = f" ({', '.join(running)})" if running else ""
    parts = [f"status: running {len(running)} of {capacity}{names}"]
    for type_name, counts in sorted(per_type.items()):
        states = ", ".join(f"{state} {getattr(counts, state)}" for state in _STATES)
        parts.append(f"{type_name}: {states}")
    if not per_type:
        parts.append("no jobs")
    return "; ".join(parts)


async def serve_status_log(engine: Engine, every_seconds: float) -> None:
    """Log the status line every ``every_seconds`` (0: never) until cancelled.

    Cancellation: nothing to undo; it only reads.
    """
    if every_seconds <= 0:
        return
    while True:
        await trio.sleep(every_seconds)
        status = engine.status()
        try:
            per_type = await engine.counts_by_type()
        except StoreError as exc:
            log.warning("status: the store did not answer: %s", exc)
            continue
        log.info(status_line(status.running_batches, status.max_batches, per_type))
