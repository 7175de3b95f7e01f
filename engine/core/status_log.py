"""The status line: every ``STATUS_LOG_SECONDS`` the engine logs what it
runs and how the jobs of the store stand, per job type.

One INFO line on the logger ``batchyard.status``::

    status: running 2 of 2 (b1, b2); echo: pending 10, active 2, completed 30, failed 1; ...

"running" is this engine's runs out of ``MAX_ACTIVE_BATCHES``; the counts
are the store's (every engine of the cluster), from one ``list_batches``,
with each batch's jobs counted under the batch's type. A store that does
not answer makes the line say so instead; the next one tries again.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import trio

from engine.core.engine import Engine
from engine.errors import StoreError
from engine.store import BatchRecord

__all__ = ["serve_status_log", "status_line"]

log = logging.getLogger("batchyard.status")

_STATES = ("pending", "active", "completed", "failed")


def status_line(running: tuple[str, ...], capacity: int, batches: list[BatchRecord]) -> str:
    """The status line for this engine's ``running`` batches out of
    ``capacity``, and the store's ``batches``."""
    per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for batch in batches:
        totals = per_type[batch.type]
        for index, state in enumerate(_STATES):
            totals[index] += getattr(batch.counts, state)
    names = f" ({', '.join(running)})" if running else ""
    parts = [f"status: running {len(running)} of {capacity}{names}"]
    for type_name, totals in sorted(per_type.items()):
        counts = ", ".join(f"{state} {n}" for state, n in zip(_STATES, totals, strict=True))
        parts.append(f"{type_name}: {counts}")
    if not batches:
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
            batches = await engine.list_batches()
        except StoreError as exc:
            log.warning("status: the store did not answer: %s", exc)
            continue
        log.info(status_line(status.running_batches, status.max_batches, batches))
