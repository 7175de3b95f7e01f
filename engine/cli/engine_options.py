"""What the commands that run an engine (``serve``, ``worker``) share: the
flags that choose its store, job modules, profile, config file and
auto-start, and the one way such a command loads its settings, runs and
turns an error into one line on stderr."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import click
import trio

from engine.config.settings import Settings
from engine.core.logs import configure_logging
from engine.errors import EngineError

__all__ = ["engine_options", "run_engine_command"]

_F = TypeVar("_F", bound=Callable[..., Any])


def engine_options(auto_start_help: str) -> Callable[[_F], _F]:
    """The flags ``--store``, ``--jobs``, ``--profile``, ``--config`` and
    ``--auto-start/--no-auto-start`` (its help is the command's own)."""

    def decorate(command: _F) -> _F:
        for option in reversed(
            (
                click.option("--store", metavar="URL", help="Store URL (else BATCHYARD_STORE)."),
                click.option(
                    "--jobs",
                    "job_modules",
                    metavar="MODULE",
                    multiple=True,
                    help="Module whose job types to register; repeatable (else BATCHYARD_JOBS).",
                ),
                click.option("--profile", help="dev, production or high-performance."),
                click.option(
                    "--config",
                    "config_path",
                    type=click.Path(dir_okay=False),
                    help="TOML file with [engine] and [types.NAME] tables.",
                ),
                click.option("--auto-start/--no-auto-start", default=None, help=auto_start_help),
            )
        ):
            command = option(command)
        return command

    return decorate


def run_engine_command(
    name: str,
    run: Callable[[Settings], Awaitable[object]],
    *,
    store: str | None,
    job_modules: tuple[str, ...],
    profile: str | None,
    config_path: str | None,
    auto_start: bool | None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Load the settings (flags over environment over file over
    ``defaults``), log to stderr as they say (``engine.core.logs``), and run
    ``run(settings)`` under Trio until it returns. An ``EngineError`` (a bad
    setting, a store that cannot be opened) is one line naming the command
    (a JSON object once the settings chose JSON), exit 1; an interrupt
    before the engine's own signal handlers were installed is exit 130."""
    overrides = {"store_url": store, "job_modules": job_modules or None, "auto_start": auto_start}
    as_json = False
    try:
        settings = Settings.load(
            profile=profile, config_path=config_path, overrides=overrides, defaults=defaults
        )
        configure_logging(settings.log_format, settings.log_level)
        as_json = settings.log_format == "json"
        trio.run(run, settings)
    except EngineError as exc:
        if as_json:  # the line is one JSON object like every other
            logging.getLogger("batchyard.cli").error("batchyard %s: %s", name, exc)
        else:
            click.echo(f"batchyard {name}: {exc}", err=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:  # before the signal handlers were installed
        raise SystemExit(130) from None
