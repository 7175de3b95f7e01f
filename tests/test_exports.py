"""The public surface of ``engine`` and ``protocols`` is pinned here."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import engine
import protocols


def test_engine_exports_resolve() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name
    assert set(engine.__all__) == set(engine._HOMES)


@pytest.mark.parametrize(
    "package",
    [
        "engine.core",
        "engine.supervisor",
        "engine.jobs",
        "engine.config",
        "engine.store",
        "engine.server",
        "engine.client",
        "engine.cli",
        "engine.testing",
    ],
)
def test_every_engine_folder_exports_what_it_lists(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_protocols_exports_resolve() -> None:
    for name in protocols.__all__:
        assert hasattr(protocols, name), name


def test_child_imports_stay_lean() -> None:
    code = (
        "import sys, engine.child.program; "
        "heavy = [m for m in ('engine.store', 'engine.core', 'engine.supervisor', "
        "'engine.server', 'engine.config', 'starlette', 'hypercorn', 'httpx', 'rich', "
        "'sqlite3', 'protocols.api', 'protocols.bounds') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
