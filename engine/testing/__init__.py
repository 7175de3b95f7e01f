"""Test support, shared by ``tests/`` and ``bench/``. No runtime module
imports it; an engine loads it only when ``BATCHYARD_JOBS`` names it.

Importing the package registers the fault-injection job types of
``engine.testing.faults``, so ``BATCHYARD_JOBS=engine.testing`` gives an
engine and its children ``crash``, ``hang``, ``garble``, ``pid`` and
``steps``, those of ``engine.testing.flows``: ``fan-out``,
``fan-out-sync``, ``rate-limited`` and ``rate-limited-sync``, and those of
``engine.testing.probes`` (``environment``). The harness
(``engine.testing.harness``: test settings, engines and servers, a failing
store, helpers that build jobs and collect events; and
``engine.testing.fake_child``, the in-process child spawner) is imported
only when one of its names is used, so a child never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.testing import faults as faults
from engine.testing import flows as flows
from engine.testing import probes as probes
from protocols._lazy import lazy_exports

if TYPE_CHECKING:
    from engine.testing.fake_child import FakeChild, FakeSpawner
    from engine.testing.harness import (
        FailingStore,
        collect_until,
        jobs_of,
        open_fake_engine,
        open_fake_store,
        open_test_engine,
        open_test_server,
        settings_for_tests,
        trio_wall_clock,
    )

__all__ = [
    "FailingStore",
    "FakeChild",
    "FakeSpawner",
    "collect_until",
    "faults",
    "flows",
    "jobs_of",
    "open_fake_engine",
    "open_fake_store",
    "open_test_engine",
    "open_test_server",
    "probes",
    "settings_for_tests",
    "trio_wall_clock",
]

_HOMES = dict.fromkeys(["FakeChild", "FakeSpawner"], "engine.testing.fake_child") | dict.fromkeys(
    [
        "FailingStore",
        "collect_until",
        "jobs_of",
        "open_fake_engine",
        "open_fake_store",
        "open_test_engine",
        "open_test_server",
        "settings_for_tests",
        "trio_wall_clock",
    ],
    "engine.testing.harness",
)

__getattr__ = lazy_exports(__name__, _HOMES)
