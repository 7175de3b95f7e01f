"""The engine control commands of ``batchyard``: ``pause`` and ``resume``."""

from __future__ import annotations

import click

from engine.cli.client_common import (
    OneLineCommand,
    client_options,
    make_client,
    print_said,
    run_client,
)
from engine.client.http import BatchyardClient

__all__ = ["ENGINE_COMMANDS"]


async def _pause(client: BatchyardClient) -> str:
    await client.pause()
    return "paused: no new jobs are handed out; running children finish what they hold"


async def _resume(client: BatchyardClient) -> str:
    await client.resume()
    return "resumed: jobs are handed out again"


@click.command(cls=OneLineCommand)
@client_options
def pause(url: str, token: str | None) -> None:
    """Stop handing out jobs; running children finish what they hold."""
    run_client(print_said, make_client(url, token), _pause)


@click.command(cls=OneLineCommand)
@client_options
def resume(url: str, token: str | None) -> None:
    """Hand out jobs again after pause."""
    run_client(print_said, make_client(url, token), _resume)


ENGINE_COMMANDS: tuple[click.Command, ...] = (pause, resume)
