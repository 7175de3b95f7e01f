"""The ``batchyard`` command (also ``python -m engine``). Nothing imports it.

Each command is a thin shell: it parses flags, calls the engine or the HTTP
client, and turns any error into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import click
import trio

from engine.cli.batch_commands import BATCH_COMMANDS
from engine.cli.demo import run_demo
from engine.cli.demo_serve import serve_demo
from engine.cli.engine_commands import ENGINE_COMMANDS
from engine.cli.engine_options import engine_options, run_engine_command
from engine.cli.job_commands import JOB_COMMANDS
from engine.cli.watch_command import watch
from engine.cli.worker_command import worker
from engine.core.logs import configure_logging_from
from engine.errors import EngineError

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batchyard")
def main() -> None:
    """batchyard: run batches of jobs in child processes, with exact limits,
    live progress and graceful shutdown."""


@main.command()
@click.option(
    "--serve",
    "served",
    is_flag=True,
    help="Run the demo behind the HTTP server and keep the dashboard up until Ctrl-C.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address (with --serve).")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (with --serve); 0 picks a free one.",
)
def demo(served: bool, host: str, port: int) -> None:
    """Run batches in child processes on a throwaway store: two in parallel,
    a start refused at capacity, a rate-limited one with its ETA, a crash
    survived; live progress bars and a summary."""
    try:
        configure_logging_from(os.environ)
    except EngineError as exc:
        click.echo(f"batchyard demo: {exc}", err=True)
        raise SystemExit(1) from None
    if not served:
        if not trio.run(run_demo).all_went_well:
            raise SystemExit(1)
        return
    try:
        summary = trio.run(partial(serve_demo, host=host, port=port))
    except EngineError as exc:
        click.echo(f"batchyard demo: {exc}", err=True)
        raise SystemExit(1) from None
    if summary is not None and not summary.all_went_well:
        raise SystemExit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (the start-up line names it).",
)
@engine_options(
    "Also start, within capacity, any batch with due work that runs nowhere "
    "(else AUTO_START; off by default)."
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Listen beyond loopback without BATCHYARD_TOKEN (anyone reaching it can run jobs).",
)
def serve(host: str, port: int, insecure_no_auth: bool, **engine_flags: Any) -> None:
    """Run the engine behind the HTTP and WebSocket API until SIGINT or SIGTERM
    (a second one ends the children's grace period)."""
    # Imported here: the client commands need none of the server stack.
    from engine.server.serve import serve as serve_http

    run = partial(serve_http, host=host, port=port, insecure_no_auth=insecure_no_auth)
    run_engine_command("serve", run, **engine_flags)


for _command in (*BATCH_COMMANDS, *JOB_COMMANDS, *ENGINE_COMMANDS, watch, worker):
    main.add_command(_command)
