"""The pause: a run dispatches only while its gate is open.

The runner sees the gate through the ``PauseGate`` Protocol; the engine's
``PauseSwitch`` (closed by ``Engine.pause``, opened by ``resume`` and by a
shutdown, so runs see their stop at once) is the one it is given.
"""

from __future__ import annotations

from typing import Protocol

import trio

__all__ = ["PauseGate", "PauseSwitch"]


class PauseGate(Protocol):
    """What a run asks before it hands out jobs: whether dispatching is allowed."""

    @property
    def is_open(self) -> bool:
        """Whether dispatching is allowed now."""
        ...

    async def wait_open(self) -> None:
        """Return once dispatching is allowed (at once while it is).

        Cancellation: atomic.
        """
        ...


class PauseSwitch:
    """The engine's ``PauseGate``: open unless paused."""

    def __init__(self) -> None:
        self._open = trio.Event()
        self._open.set()

    @property
    def is_open(self) -> bool:
        """Whether dispatching is allowed now."""
        return self._open.is_set()

    def close(self) -> None:
        """Pause: runs stop handing out jobs until ``open``."""
        if self._open.is_set():
            self._open = trio.Event()

    def open(self) -> None:
        """Resume: every waiting run goes on at once."""
        self._open.set()

    async def wait_open(self) -> None:
        """Return once dispatching is allowed (at once while it is).

        Cancellation: atomic.
        """
        await self._open.wait()
