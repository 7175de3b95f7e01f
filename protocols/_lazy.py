"""Lazy re-exports for package ``__init__`` modules.

A package that re-exports its public names eagerly makes every importer pay
for every submodule; a child process, whose start-up is part of each cold
batch start, needs only a few. ``lazy_exports`` gives a package a module
``__getattr__`` (PEP 562) that imports a name's home module on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that finds ``name`` in the
    module ``homes[name]``.

    Raises (from the returned function):
        AttributeError: ``name`` is not one of ``homes``.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home), name)

    return __getattr__
