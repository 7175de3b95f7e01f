"""``batchyard worker``: an engine without the HTTP server that starts
whatever batches have work (``AUTO_START=1`` unless told otherwise),
sharing them with every other engine on the store, until SIGINT or SIGTERM
(the same graceful stop as ``serve``: ``engine.core.signals``)."""

from __future__ import annotations

import logging
from importlib.metadata import version
from typing import Any

import click
import trio

from engine.cli.engine_options import engine_options, run_engine_command
from engine.config.parsers import redact_url
from engine.config.settings import Settings
from engine.core.signals import drain_on_request, single_engine_error, stop_signals
from engine.core.startup import open_engine

__all__ = ["run_worker", "worker"]

log = logging.getLogger("batchyard.worker")


async def run_worker(
    settings: Settings, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Open the engine and let it work until SIGINT or SIGTERM; returns once
    it has stopped (its unfinished runs handed over).

    Args:
        settings: the engine's settings.
        task_status: gets the engine's id once it runs.

    Cancellation: may have partially happened; children still get their
    grace period as the engine closes.

    Raises:
        ConfigError: a setting is unusable.
        JobError: a job module cannot be imported.
        StoreUnavailable: the store cannot be opened.
    """
    with stop_signals() as signals, single_engine_error():
        async with open_engine(settings) as engine:
            log.info(
                "batchyard %s worker %s on %s; %s",
                version("batchyard"),
                engine.owner,
                redact_url(settings.store_url),
                settings.describe(),
            )
            task_status.started(engine.owner)
            await drain_on_request(engine, signals)
    log.info("stopped")


@click.command()
@engine_options(
    "Start any batch with due work (default; else AUTO_START), or only "
    "batches flagged autoStart or with after, and runs to take over."
)
def worker(**engine_flags: Any) -> None:
    """Run an engine without the HTTP server: it starts whatever batches have
    work, shared with every engine on the store, until SIGINT or SIGTERM (a
    second one ends the children's grace period)."""
    run_engine_command("worker", run_worker, defaults={"auto_start": True}, **engine_flags)
