"""Polling, for what has no event to wait on: another process's state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

__all__ = ["poll_until"]


async def poll_until(
    holds: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.02
) -> bool:
    """Whether ``holds()`` came true within ``timeout`` seconds, asked every
    ``interval``; never raises for the time running out."""
    with trio.move_on_after(timeout):
        while not await holds():  # noqa: ASYNC110 - another process's state
            await trio.sleep(interval)
        return True
    return False
