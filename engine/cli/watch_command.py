"""``batchyard watch``: live progress of a batch's run, until it ends.

The view itself (bars, the end of a run) is ``engine.cli.watch_view``; this
module is the command's shell and its exit status.
"""

from __future__ import annotations

import click
from rich.console import Console

from engine.cli.client_common import (
    EXIT_REFUSED,
    EXIT_SERVER_GONE,
    OneLineCommand,
    client_options,
    make_client,
    run_client,
)
from engine.cli.watch_view import WatchEnd, show_watch
from engine.client.http import BatchyardClient

__all__ = ["watch"]


@click.command(cls=OneLineCommand)
@click.argument("batch_id", metavar="[BATCH]", required=False)
@click.option("--follow", is_flag=True, help="Keep watching after the run ends.")
@client_options
def watch(batch_id: str | None, follow: bool, url: str, token: str | None) -> None:
    """Live progress of BATCH until its run ends (every batch, without BATCH).

    Exits 0 when the run ended with done, 1 when it ended with an error, 3
    when the server shut down first.
    """
    run_client(_watch, make_client(url, token), batch_id, follow)


async def _watch(client: BatchyardClient, batch_id: str | None, follow: bool) -> int:
    async with client:
        result = await show_watch(client, batch_id, follow=follow, console=Console())
    if result.end is WatchEnd.SERVER_GONE:
        click.echo(f"batchyard: {result.detail}", err=True)
        return 0 if follow or batch_id is None else EXIT_SERVER_GONE
    return EXIT_REFUSED if result.end is WatchEnd.ERROR else 0
