"""The percentage each job's handler last reported, kept in the store.

A burst of child reports may carry ``JobProgress`` lines; the last one of
each job is written in one store call (``Store.record_progress``) before
the burst's outcomes, so a job that reports and finishes in one burst keeps
what it reported. A burst without progress costs nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from functools import partial

from engine.store.base import Store
from protocols import ipc

__all__ = ["record_progress"]


async def record_progress(
    store: Store,
    messages: Iterable[ipc.ChildMessage],
    owner: str,
    step: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]],
) -> None:
    """Write the last progress of each job in ``messages`` through ``step``
    (the run's retried store step).

    Cancellation: may have partially happened (progress is advisory).

    Raises:
        StoreError: the store refused the write.
    """
    progress = {m.job_id: m.progress for m in messages if isinstance(m, ipc.JobProgress)}
    if progress:
        await step(partial(store.record_progress, progress, owner=owner))
