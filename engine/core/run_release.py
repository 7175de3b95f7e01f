"""Giving back what a batch run holds: its jobs and its run record.

Design notes
------------
When a child exits, every job the run still holds goes back to the store
(``Recorder.release``: written outcomes, refunds, crash attempts) and,
when the run ends, its run record is forgotten or handed over. Both steps
meet an outage like every store step of a run: retried until the run's
deadline, and past it left to the leases, which bring the jobs and the
record back on their own (logged). Neither step raises for an outage.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from engine.core.held import HeldJobs
from engine.core.recorder import Recorder
from engine.errors import StoreError, StoreUnavailable
from engine.store.base import Store

__all__ = ["release_held", "release_run_record"]

log = logging.getLogger("batchyard.runner")


async def release_held(
    recorder: Recorder, held: HeldJobs, *, crashed: bool, lease_seconds: float
) -> None:
    """Release the jobs ``held`` by a child that exited (``crashed`` or
    not) through ``recorder``, within a lease at most.

    Cancellation: shielded, so a cancelled run still gives its jobs back. A
    stop gives the run's patience a deadline, but a run cancelled without
    one (its nursery torn down without a drain) would wait for the store
    without end: at most a lease, then, since by then the jobs come back
    through their lease anyway. What is not released then is logged.
    """
    batch_id = recorder.batch_id
    with trio.move_on_after(lease_seconds, shield=True) as bounded:
        try:
            # A job claimed back while its outcome was being recorded is
            # held once its predecessor is popped: a second pass for it.
            await recorder.release(held, crashed=crashed)
            if held:
                await recorder.release(held, crashed=crashed)
        except StoreError as exc:
            log.error("[batch %s] cannot release jobs: %s", batch_id, exc)
    if bounded.cancelled_caught:
        log.error(
            "[batch %s] cannot release %d jobs within a lease (%s s); they come back"
            " to pending when their lease runs out, and their type slots with it",
            batch_id,
            len(held),
            lease_seconds,
        )


async def release_run_record(
    store: Store,
    batch_id: str,
    owner: str,
    *,
    finished: bool,
    store_step: Callable[[Callable[[], Awaitable[bool]]], Awaitable[bool]],
) -> None:
    """Forget the batch's run record (``finished``) or hand it over, through
    an outage for as long as ``store_step`` retries (until the run's
    deadline). A store still away then leaves the record to this engine's
    lease: renewed while it lives, so the batch resumes here (or, once it
    is gone, anywhere)."""
    release = partial(store.release_run, batch_id, owner, finished=finished)
    try:
        await store_step(release)
    except StoreUnavailable as exc:
        log.warning("[batch %s] cannot release the run record: %s", batch_id, exc)
