"""The ``batchyard`` command (also ``python -m engine``). Nothing imports it."""

from __future__ import annotations

from engine.cli.main import main

__all__ = ["main"]
