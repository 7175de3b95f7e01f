"""Settings: every variable of the contract, from defaults, a TOML file, the
environment, flags and profiles; each bad value a ``ConfigError``."""

from __future__ import annotations

from engine.config.settings import RateLimit, Settings

__all__ = ["RateLimit", "Settings"]
