"""``batchyard worker``: an engine without the HTTP server that starts
whatever batches have work (``AUTO_START=1`` unless told otherwise),
sharing them with every other engine on the store, until SIGINT or SIGTERM
(the same graceful stop as ``serve``: ``engine.core.signals``)."""

from __future__ import annotations

import logging
from functools import partial
from importlib.metadata import version

import click
import trio

from engine.config.parsers import redact_url
from engine.config.settings import Settings
from engine.core.signals import drain_on_request, single_engine_error, stop_signals
from engine.core.startup import open_engine
from engine.errors import EngineError

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
    "--auto-start/--no-auto-start",
    default=None,
    help="Start any batch with due work (default; else AUTO_START), or only "
    "batches flagged autoStart or with after, and runs to take over.",
)
def worker(
    store: str | None,
    job_modules: tuple[str, ...],
    profile: str | None,
    config_path: str | None,
    auto_start: bool | None,
) -> None:
    """Run an engine without the HTTP server: it starts whatever batches have
    work, shared with every engine on the store, until SIGINT or SIGTERM (a
    second one ends the children's grace period)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides = {"store_url": store, "job_modules": job_modules or None, "auto_start": auto_start}
    try:
        settings = Settings.load(
            profile=profile,
            config_path=config_path,
            overrides=overrides,
            defaults={"auto_start": True},
        )
        trio.run(partial(run_worker, settings))
    except EngineError as exc:
        click.echo(f"batchyard worker: {exc}", err=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:  # before the signal handlers were installed
        raise SystemExit(130) from None
