"""The environment a child process gets: the engine's, minus its secrets.

Design notes
------------
Job handlers run in children and need what the engine's environment gives
them (API keys, proxies, ``PATH``), so a child inherits it, except the two
secrets the engine holds for itself (contract, "Security"):

* the API token: ``BATCHYARD_TOKEN`` is dropped, and so is any variable
  whose value holds the token (it may have come from a file or a flag and
  been exported under another name);
* the store URL's password: a variable holding the store URL is passed with
  its password replaced by ``***`` (``redact_url``), and any other variable
  holding the password is dropped.

A secret shorter than ``_SUBSTRING_MIN`` characters is matched only as a
whole value: as a substring it would match half the environment (a
one-letter password is in ``PATH``). Children never touch the store, so
they lose nothing they use.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from engine.config.parsers import redact_url
from engine.config.settings import Settings

__all__ = ["child_environment"]

TOKEN_VARIABLE = "BATCHYARD_TOKEN"

_SUBSTRING_MIN = 8


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


def _holds(value: str, secret: str) -> bool:
    return value == secret or (len(secret) >= _SUBSTRING_MIN and secret in value)


def child_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the token and the store password of ``settings``.

    Args:
        settings: the engine's settings (its token and store URL).
        environ: the engine's environment.

    Returns:
        The variables a child gets.
    """
    password = _password(settings.store_url)
    secrets = [s for s in (settings.token, password) if s]
    env: dict[str, str] = {}
    for name, value in environ.items():
        if name == TOKEN_VARIABLE:
            continue
        if password and value == settings.store_url:
            env[name] = redact_url(value)
        elif not any(_holds(value, secret) for secret in secrets):
            env[name] = value
    return env
