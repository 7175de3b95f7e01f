"""What every scenario gets: its settings for this run and a scratch folder."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs

from faults.report import Outcome

__all__ = ["Run", "Scenario"]


@attrs.frozen
class Run:
    """One scenario's run: ``workdir`` is its own empty folder; ``quick``
    asks for the short version; ``rounds`` (when set) overrides the rounds of
    a scenario that has them; ``seconds`` (when set) its duration."""

    workdir: Path
    quick: bool = False
    rounds: int | None = None
    seconds: float | None = None

    def rounds_or(self, full: int, quick: int) -> int:
        return self.rounds if self.rounds is not None else (quick if self.quick else full)

    def seconds_or(self, full: float, quick: float) -> float:
        return self.seconds if self.seconds is not None else (quick if self.quick else full)


@attrs.frozen
class Scenario:
    """A named scenario, ``body`` filling the ``Outcome`` it is given; the
    runner bounds it by ``limit_seconds`` (its full length; a quick run gets
    the same bound)."""

    name: str
    body: Callable[[Run, Outcome], Awaitable[None]]
    limit_seconds: float
