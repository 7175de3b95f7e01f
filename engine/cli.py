"""The ``batchyard`` command (also ``python -m engine``). Nothing imports it.

Each command is a thin shell: it parses flags, calls the engine or the HTTP
client, and turns any error into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import click
import trio

from engine.cli_client import COMMANDS as CLIENT_COMMANDS
from engine.demo import run_demo

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batchyard")
def main() -> None:
    """batchyard: run batches of jobs in child processes, with exact limits,
    live progress and graceful shutdown."""


@main.command()
def demo() -> None:
    """Run two batches in child processes on a throwaway store, with live
    progress bars and a summary."""
    summary = trio.run(run_demo)
    if summary.failed:
        raise SystemExit(1)


for _command in CLIENT_COMMANDS:
    main.add_command(_command)
