"""The client commands of ``batchyard``: they talk to a running server over HTTP.

``engine.cli`` registers every command of ``COMMANDS`` on its group.
"""

from __future__ import annotations

import click

__all__ = ["COMMANDS"]

COMMANDS: tuple[click.Command, ...] = ()
