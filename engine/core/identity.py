"""Who an engine is, and whether the process a record names still lives.

Design notes
------------
An engine is known by its id, host, pid and boot id (``EngineIdentity``).
A record of this host and boot whose process no longer lives is a dead
engine for sure, so what it held can be taken back at once (the cluster's
take-back at open). A pid may have been reused: a record is only taken for
dead when no process has its pid, or the one that has it is no batchyard
engine (its command line says so, where ``/proc`` tells). Engines in one
process (tests) share a pid, and each one's record is then live. The
check needs every engine on a host to see the others' processes (one pid
namespace) or to have a host name of its own, as containers do.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs
import psutil

from engine.store import EngineRecord

__all__ = ["EngineIdentity", "engine_process_lives"]


@attrs.frozen(kw_only=True)
class EngineIdentity:
    """Who an engine is: its id, and the host, boot and process it runs in."""

    engine_id: str
    host: str
    pid: int
    boot_id: str

    @classmethod
    def of_this_process(cls, engine_id: str) -> EngineIdentity:
        """The identity of an engine ``engine_id`` running in this process."""
        host, pid = socket.gethostname(), os.getpid()
        return cls(engine_id=engine_id, host=host, pid=pid, boot_id=_boot_id())

    def outlives(self, record: EngineRecord) -> bool:
        """Whether ``record`` is another engine of this host and boot whose
        process is gone (so what it held can be taken back at once)."""
        return (
            record.engine_id != self.engine_id
            and record.host == self.host
            and record.boot_id == self.boot_id
            and record.pid != self.pid
            and not engine_process_lives(record.pid)
        )


def _boot_id() -> str:
    # Linux names each boot; elsewhere the boot time tells boots apart.
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"boot-{psutil.boot_time():.0f}"


def engine_process_lives(pid: int) -> bool:
    """Whether a process with ``pid`` lives and may be a batchyard engine:
    False when there is none, or ``/proc`` shows it runs something else."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it lives
    except OverflowError:  # no pid at all
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return sys.platform != "linux"  # cannot tell: assume it is the engine
    return _is_engine_command(argv)


def _is_engine_command(argv: Sequence[bytes]) -> bool:
    # ``batchyard serve|worker`` or ``python -m engine ...``; a child is
    # ``python -m engine.child``, which is not an engine.
    named = any(Path(os.fsdecode(arg)).name == "batchyard" for arg in argv)
    module = any(a == b"-m" and b == b"engine" for a, b in itertools.pairwise(argv))
    return named or module
