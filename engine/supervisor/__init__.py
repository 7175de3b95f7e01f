"""The parent side of a child process: starting it, keeping spares warm,
stopping it (ask, wait, SIGKILL), and the parent's end of its IPC pipes."""

from __future__ import annotations

from engine.supervisor.channel import ChildChannel
from engine.supervisor.children import Child, ChildSupervisor
from engine.supervisor.spawner import ChildProcess, PreparedChild, ProcessSpawner, Spawner

__all__ = [
    "Child",
    "ChildChannel",
    "ChildProcess",
    "ChildSupervisor",
    "PreparedChild",
    "ProcessSpawner",
    "Spawner",
]
