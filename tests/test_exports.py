"""The public surface of ``engine`` and ``protocols`` is pinned here."""

from __future__ import annotations

import subprocess
import sys

import engine
import protocols


def test_engine_exports_resolve() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name
    assert set(engine.__all__) == set(engine._HOMES)


def test_protocols_exports_resolve() -> None:
    for name in protocols.__all__:
        assert hasattr(protocols, name), name


def test_child_imports_stay_lean() -> None:
    code = (
        "import sys, engine.child; "
        "heavy = [m for m in ('engine.store', 'engine.engine', 'engine.server', 'starlette', "
        "'hypercorn', 'httpx', 'rich', 'sqlite3') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
