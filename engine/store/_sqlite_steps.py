"""The SQLite store's hot steps: claiming a batch's due jobs, recording
what became of claimed ones, and both in one transaction.

``SqliteSteps`` is inherited by ``SqliteStore`` like its other method
groups (one transaction per call; see ``engine.store.sqlite``). Its calls
are the run's hot path: their bodies yield their heavy statements
(``engine.store._sqlite_offload``) and go through the store's
``_run_hot``, which runs them as hot steps (the module notes there say
how and when), unless a step adds many follow-up jobs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from engine.store import _sqlite_ops as ops
from engine.store import _sqlite_outcomes as outcomes_
from engine.store._sqlite_follow_ups import add_follow_ups
from engine.store._sqlite_offload import Body
from engine.store._sqlite_outcomes import apply_body as apply_outcomes
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
        ) -> _T: ...

        async def _run_hot(
            self, body: Callable[[sqlite3.Connection, float], Body[_T]], *, hot: bool
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
        return await self._run_hot(
            lambda conn, now: ops.claim_body(conn, now, batch_id, limit, owner, lease_seconds),
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

        def apply(conn: sqlite3.Connection, now: float) -> Body[dict[str, JobState]]:
            states = yield from apply_outcomes(conn, now, outcomes, owner)
            add_follow_ups(conn, now, outcomes, states)
            return states

        return await self._run_hot(apply, hot=_few_follow_ups(outcomes))

    async def apply_and_claim(
        self, outcomes: Sequence[Outcome], *, owner: str, claim: Claim
    ) -> Step:
        """``apply`` then ``claim_jobs`` in one transaction (``Store``).

        Cancellation: atomic: if it raises ``Cancelled``, nothing happened.
        """

        def step(conn: sqlite3.Connection, now: float) -> Body[Step]:
            states: dict[str, JobState] = {}
            if outcomes:
                states = yield from apply_outcomes(conn, now, outcomes, owner)
            add_follow_ups(conn, now, outcomes, states)
            claimed: list[JobRecord] = []
            if claim.limit > 0:
                claimed = yield from ops.claim_body(
                    conn, now, claim.batch_id, claim.limit, owner, claim.lease_seconds
                )
            return Step(states=states, claimed=claimed)

        results = outcomes_.only_completions(outcomes) if claim.limit > 0 else None
        if not results:
            return await self._run_hot(step, hot=_few_follow_ups(outcomes))

        def completions_and_claim(conn: sqlite3.Connection, now: float) -> Body[Step]:
            completing = outcomes_.completing(results, now, owner)
            claiming = ops.claiming(now, claim.batch_id, claim.limit, owner, claim.lease_seconds)

            def heavy() -> tuple[int, sqlite3.Cursor]:
                changed = conn.execute(outcomes_.COMPLETE_MANY, completing).rowcount
                return changed, conn.execute(ops.CLAIM, claiming)

            conn.execute("SAVEPOINT step")
            done = yield heavy
            assert isinstance(done, tuple)
            changed, cursor = done
            claimed = ops.claimed(cursor)
            if changed == len(results):
                conn.execute("RELEASE step")
                return Step(states=dict.fromkeys(results, outcomes_.COMPLETED), claimed=claimed)
            # Some were not ours to complete: the step again, naming those that were.
            conn.execute("ROLLBACK TO step")
            conn.execute("RELEASE step")
            return (yield from step(conn, now))

        return await self._run_hot(completions_and_claim, hot=True)
