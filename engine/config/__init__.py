"""Settings: every variable of the contract, from defaults, a TOML file, the
environment, flags and profiles; each bad value a ``ConfigError``.

``parsers`` reads single values (rates, numbers, seconds, store URLs),
``sources`` reads the file, the environment and the flags, and ``settings``
declares every setting and loads them.
"""

from __future__ import annotations

from engine.config.parsers import RateLimit
from engine.config.settings import Settings

__all__ = ["RateLimit", "Settings"]
