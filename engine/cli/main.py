"""The ``batchyard`` command (also ``python -m engine``). Nothing imports it.

Each command is a thin shell: it parses flags, calls the engine or the HTTP
client, and turns any error into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import logging
from functools import partial

import click
import trio

from engine.cli.batch_commands import BATCH_COMMANDS
from engine.cli.demo import run_demo
from engine.cli.engine_commands import ENGINE_COMMANDS
from engine.cli.watch_command import watch
from engine.cli.worker_command import worker
from engine.config.settings import Settings
from engine.errors import EngineError

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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (the start-up line names it).",
)
@click.option("--store", metavar="URL", help="Store URL (else BATCHYARD_STORE).")
@click.option(
    "--jobs",
    "job_modules",
    metavar="MODULE",
    multiple=True,
    help="Module whose job types to register; repeatable (else BATCHYARD_JOBS).",
)
@click.option("--profile", help="dev, production or high-performance.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML file with [engine] and [types.NAME] tables.",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Listen beyond loopback without BATCHYARD_TOKEN (anyone reaching it can run jobs).",
)
@click.option(
    "--auto-start/--no-auto-start",
    default=None,
    help="Also start, within capacity, any batch with due work that runs nowhere "
    "(else AUTO_START; off by default).",
)
def serve(
    host: str,
    port: int,
    store: str | None,
    job_modules: tuple[str, ...],
    profile: str | None,
    config_path: str | None,
    insecure_no_auth: bool,
    auto_start: bool | None,
) -> None:
    """Run the engine behind the HTTP and WebSocket API until SIGINT or SIGTERM
    (a second one ends the children's grace period)."""
    # Imported here: the client commands need none of the server stack.
    from engine.server.serve import serve as serve_http

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides = {"store_url": store, "job_modules": job_modules or None, "auto_start": auto_start}
    try:
        settings = Settings.load(profile=profile, config_path=config_path, overrides=overrides)
        trio.run(
            partial(serve_http, settings, host=host, port=port, insecure_no_auth=insecure_no_auth)
        )
    except EngineError as exc:
        click.echo(f"batchyard serve: {exc}", err=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:  # before the signal handlers were installed
        raise SystemExit(130) from None


for _command in (*BATCH_COMMANDS, *ENGINE_COMMANDS, watch, worker):
    main.add_command(_command)
