"""What a scenario found: its figures and its misses, printed as one line."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["Outcome"]


@attrs.define
class Outcome:
    """One scenario's result. ``figures`` are what it measured, in the order
    they were recorded; ``misses`` are the promises it saw broken (none: it
    passed)."""

    name: str
    figures: dict[str, Any] = attrs.field(factory=dict)
    misses: list[str] = attrs.field(factory=list)

    @property
    def passed(self) -> bool:
        return not self.misses

    def expect(self, holds: bool, miss: str) -> None:
        """Record ``miss`` unless ``holds``."""
        if not holds:
            self.misses.append(miss)

    def line(self) -> str:
        """``PASS name: k=v ...`` or ``MISS name: k=v ... | what missed``."""
        figures = " ".join(f"{key}={_shown(value)}" for key, value in self.figures.items())
        verdict = "PASS" if self.passed else "MISS"
        tail = f" | {'; '.join(self.misses)}" if self.misses else ""
        return f"{verdict} {self.name}: {figures}{tail}"


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
