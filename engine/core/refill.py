"""Refilling a run in the recorder's store step: the jobs that replace a
burst of finished ones are claimed in the same transaction that records
the burst's outcomes (``Store.apply_and_claim``), one store round trip per
burst instead of two.

Design notes
------------
The dispatcher says whether a claim may ride on a step, and how big
(``Refill.refill_claim``: never while it is stopped, paused or due to make
sure it still holds the run); the recorder makes the step; ``hold_refill``
holds what it claimed at once (inside the step's shield, so a cancellation
never strands a claimed job outside ``HeldJobs``), each job on the credit
of a job whose outcome the same step recorded, so the run's credits bound
its jobs as before; and ``Refill.hand`` gives them to the dispatcher, which
sends them through the limits like the jobs it claims itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from engine.core.held import HeldJobs
from engine.store.records import Claim, JobRecord

__all__ = ["Refill", "hold_refill"]

log = logging.getLogger("batchyard.runner")


class Refill(Protocol):
    """The dispatcher's side of a claim made in the recorder's step."""

    def refill_claim(self, freed: int) -> Claim | None:
        """The claim to make in a step that ends ``freed`` held jobs, or
        None for none (then the dispatcher claims by itself)."""
        ...

    def hand(self, jobs: list[JobRecord]) -> None:
        """Send these jobs, claimed by a step and held already. Never blocks."""
        ...


def hold_refill(
    claimed: Sequence[JobRecord], finishing: Sequence[str], held: HeldJobs, batch_id: str
) -> list[JobRecord]:
    """Hold the jobs a step claimed, each on the credit of one of the jobs
    of ``finishing`` (held, their outcomes recorded by the same step; at
    least as many as ``claimed``); the jobs to send.

    A claimed job that this run holds already and does not finish came back
    to it while it runs here (its lease lapsed while renewals failed): it is
    neither held twice nor sent again. One it finishes now (released, or a
    retry due at once) is held anew once its outcome is published.
    """
    ending = set(finishing)
    credits = iter(finishing)
    to_send: list[JobRecord] = []
    skipped = 0
    for job in claimed:
        if job.job_id in held and job.job_id not in ending:
            skipped += 1
            continue
        held.add_in_place_of(job, next(credits))
        to_send.append(job)
    if skipped:
        log.warning(
            "[batch %s] %d jobs still running here came back to this run: not sent again",
            batch_id,
            skipped,
        )
    return to_send
