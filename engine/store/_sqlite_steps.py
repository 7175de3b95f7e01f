"""The SQLite store's hot steps: claiming a batch's due jobs, recording
what became of claimed ones, and both in one transaction.

``SqliteSteps`` is inherited by ``SqliteStore`` like its other method
groups (one transaction per call through the store's ``_run``; see
``engine.store.sqlite``). Its calls are the run's hot path, so they ask
``_run`` for a ``hot`` transaction: in the Trio thread when it need not
wait (the module notes there say when), unless a step adds many
follow-up jobs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from engine.store import _sqlite_ops as ops
from engine.store._sqlite_follow_ups import add_follow_ups
from engine.store._sqlite_outcomes import apply as apply_outcomes
from engine.store.records import Claim, JobRecord, Outcome, Step

if TYPE_CHECKING:
    from protocols.lifecycle import JobState

__all__ = ["SqliteSteps"]

_T = TypeVar("_T")

#: A step adding more follow-up jobs than this is no hot step: it goes to
#: the worker thread, as ``add_jobs`` does.
_HOT_FOLLOW_UPS = 100


def _few_follow_ups(outcomes: Sequence[Outcome]) -> bool:
    """Whether the outcomes add few follow-up jobs (a hot step's size)."""
    count = 0
    for outcome in outcomes:
        follow_ups = getattr(outcome, "follow_ups", ())
        if follow_ups:
            count += len(follow_ups)
            if count > _HOT_FOLLOW_UPS:
                return False
    return True


class SqliteSteps:
    """Claims and outcomes on SQLite, for ``SqliteStore``; each method is
    one transaction, atomic under cancellation, and raises
    ``StoreUnavailable`` when SQLite cannot do the work."""

    if TYPE_CHECKING:

        async def _run(
            self,
            work: Callable[[sqlite3.Connection, float], _T],
            *,
            write: bool,
            hot: bool = False,
        ) -> _T: ...

    async def claim_jobs(
        self, batch_id: str, limit: int, *, owner: str, lease_seconds: float
    ) -> list[JobRecord]:
        """Up to ``limit`` due pending jobs, made active under ``owner``'s lease.

        Cancellation: atomic: if it raises ``Cancelled``, nothing was claimed.

        Args:
            batch_id: the batch to claim from (an unknown batch has no jobs).
            limit: the most jobs to claim.
            owner: who holds the leases.
            lease_seconds: how long the leases last unless renewed.

        Returns:
            The jobs, highest priority first and then oldest first, each with
            its new attempt counted.
        """
        if limit <= 0:
            return []
        return await self._run(
            lambda conn, now: ops.claim_jobs(conn, now, batch_id, limit, owner, lease_seconds),
            write=True,
            hot=True,
        )

    async def apply(self, outcomes: Sequence[Outcome], *, owner: str) -> dict[str, JobState]:
        """Record what became of jobs active under ``owner``'s lease, all in
        one transaction.

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.

        Args:
            outcomes: completions, failures and releases; of several for one
                job, the first counts.
            owner: whose leases the jobs must be under.

        Returns:
            The state each job is in afterwards; an outcome for a job that is
            not active under ``owner``'s lease (recovered, claimed by another
            owner, deleted, unknown) is skipped and absent. A completion's
            follow-ups are added in the same transaction.
        """
        if not outcomes:
            return {}

        def apply(conn: sqlite3.Connection, now: float) -> dict[str, JobState]:
            states = apply_outcomes(conn, now, outcomes, owner)
            add_follow_ups(conn, now, outcomes, states)
            return states

        return await self._run(apply, write=True, hot=_few_follow_ups(outcomes))

    async def apply_and_claim(
        self, outcomes: Sequence[Outcome], *, owner: str, claim: Claim
    ) -> Step:
        """``apply`` then ``claim_jobs`` in one transaction (``Store``).

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.
        """

        def step(conn: sqlite3.Connection, now: float) -> Step:
            states = apply_outcomes(conn, now, outcomes, owner) if outcomes else {}
            add_follow_ups(conn, now, outcomes, states)
            claimed: list[JobRecord] = []
            if claim.limit > 0:
                claimed = ops.claim_jobs(
                    conn, now, claim.batch_id, claim.limit, owner, claim.lease_seconds
                )
            return Step(states=states, claimed=claimed)

        return await self._run(step, write=True, hot=_few_follow_ups(outcomes))
