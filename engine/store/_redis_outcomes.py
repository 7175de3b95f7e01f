"""The Redis store's outcomes: what became of the jobs a run held, alone
(``apply``) or with the claim of the jobs replacing them (``apply_and_claim``).

``RedisOutcomes`` is inherited by ``RedisStore``; each method is one script
of ``engine.store._redis_scripts``, one round trip, shielded from
cancellation through the store's ``_run``; the claim goes through the
store's ``_claiming``, which keeps the token of a claim that raised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from engine.store._redis_values import STATES, follow_up_args, job_record, number, outcome_args
from engine.store.records import Claim, JobRecord, Outcome, Step

if TYPE_CHECKING:
    from protocols.lifecycle import JobState

__all__ = ["RedisOutcomes"]


class RedisOutcomes:
    """``apply`` and ``apply_and_claim`` of ``Store`` on Redis."""

    if TYPE_CHECKING:
        _clock: Callable[[], float]

        async def _run(self, script: str, *args: str | int) -> Any: ...

        async def _claiming(
            self, script: str, before: Sequence[str | int], owner: str, claim: Claim
        ) -> Any: ...

        async def claim_jobs(
            self, batch_id: str, limit: int, *, owner: str, lease_seconds: float
        ) -> list[JobRecord]: ...

    async def apply_and_claim(
        self, outcomes: Sequence[Outcome], *, owner: str, claim: Claim
    ) -> Step:
        """``apply`` then ``claim_jobs`` in one script (``Store``).

        Cancellation: shielded: it returns or raises, never half-done.

        Raises:
            TypeError: a result is not JSON-serialisable; nothing happened.
        """
        if claim.limit <= 0:
            return Step(states=await self.apply(outcomes, owner=owner), claimed=[])
        applied = _apply_args(outcomes, owner, self._clock())
        if not applied:
            claimed = await self.claim_jobs(
                claim.batch_id, claim.limit, owner=owner, lease_seconds=claim.lease_seconds
            )
            return Step(states={}, claimed=claimed)
        moved, rows = await self._claiming("apply_and_claim", applied, owner, claim)
        return Step(states=_states(moved), claimed=[job_record(row) for row in rows])

    async def apply(self, outcomes: Sequence[Outcome], *, owner: str) -> dict[str, JobState]:
        """Record what became of jobs active under ``owner``'s lease, all in
        one script.

        Cancellation: shielded: it returns or raises, never half-done.

        Args:
            outcomes: completions, failures and releases; of several for one
                job, the first counts.
            owner: whose leases the jobs must be under.

        Returns:
            The state each job is in afterwards; an outcome for a job that is
            not active under ``owner``'s lease (recovered, claimed by another
            owner, deleted, unknown) is skipped and absent. A completion's
            follow-ups are added in the same script.

        Raises:
            TypeError: a result is not JSON-serialisable; nothing was recorded.
        """
        args = _apply_args(outcomes, owner, self._clock())
        if not args:
            return {}
        moved = await self._run("apply", *args)
        return _states(moved)


def _apply_args(outcomes: Sequence[Outcome], owner: str, now: float) -> list[str | int]:
    """The ``apply`` script's arguments for the first outcome of each job
    and the follow-ups of the completions; none when there is no outcome."""
    first: dict[str, Outcome] = {}
    for outcome in outcomes:
        first.setdefault(outcome.job_id, outcome)
    if not first:
        return []
    args: list[str | int] = [number(now), owner, 5 * len(first)]
    for outcome in first.values():
        args += outcome_args(outcome)
    return args + follow_up_args(list(first.values()), now)


def _states(moved: list[str]) -> dict[str, JobState]:
    """The ``apply`` script's reply: job id, state, ... by job id."""
    return {job_id: STATES[state] for job_id, state in zip(moved[::2], moved[1::2], strict=True)}
