"""What every client command of ``batchyard`` shares: ``--url`` and
``--token``, running under Trio, and failing in one line.

Design notes
------------
Each client command is a thin shell: parse flags, build request bodies, run
one async function under ``trio.run`` with a ``BatchyardClient``
(``run_client``), print the answer. Human output goes through rich;
``--json`` prints the API's own camelCase shapes, one JSON document, for
scripts. The commands live by group: ``batch_commands`` (submit, start,
status, retry, cancel), ``engine_commands`` (pause, resume) and
``watch_command``; ``engine.cli.main`` registers them all.

A failed command prints one line on stderr, ``batchyard: ...``, and exits
non-zero: 1 when the server refused or could not be reached (the line is the
``ClientError``'s), 2 for bad input (a flag, a ``--payload`` that is not
JSON, a bad ``--file`` line, named by its number), 3 when ``watch`` ended
because the server shut down before the run did, 130 on Ctrl-C. Click's own
usage errors are folded into the same one line by ``OneLineCommand``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import IO, Any, TypeVar

import click
import trio
from rich.console import Console

from engine.client.errors import ClientError
from engine.client.http import DEFAULT_URL, BatchyardClient
from protocols import jsontext
from protocols.codec import CONVERTER
from protocols.events import CloseCode

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_REFUSED",
    "EXIT_SERVER_GONE",
    "EXIT_USAGE",
    "BadInput",
    "Failed",
    "OneLineCommand",
    "client_options",
    "make_client",
    "print_json",
    "print_said",
    "run_client",
]

F = TypeVar("F", bound=Callable[..., Any])

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_SERVER_GONE = 3
EXIT_INTERRUPTED = 130


class Failed(click.ClickException):
    """The server refused or could not be reached; ``show`` prints the one line."""

    exit_code = EXIT_REFUSED

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"batchyard: {self.message}", err=True)


class BadInput(Failed):
    """A flag, a payload or a jobs file line that cannot be used."""

    exit_code = EXIT_USAGE


class _Interrupted(Failed):
    """Ctrl-C."""

    exit_code = EXIT_INTERRUPTED


class OneLineCommand(click.Command):
    """A command whose usage errors are one line, like every other failure."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            name = f"batchyard {info_name}" if info_name else "batchyard"
            raise BadInput(f"{exc.format_message()} (see '{name} --help')") from None


def run_client(main: Callable[..., Awaitable[int]], *args: Any) -> None:
    """Run ``main`` under Trio; turn its outcome into an exit status.

    Raises:
        Failed: ``main`` raised ``ClientError``, or Ctrl-C interrupted it.
        SystemExit: ``main`` returned a non-zero exit status.
    """
    try:
        code = trio.run(main, *args)
    except ClientError as exc:
        raise Failed(_with_hint(exc)) from None
    except KeyboardInterrupt:
        raise _Interrupted("interrupted") from None
    except BaseExceptionGroup as group:
        # Ctrl-C that lands in a task of a nursery (the watch's reader)
        # comes out wrapped; it is the same interruption.
        if group.split(KeyboardInterrupt)[1] is not None:
            raise
        raise _Interrupted("interrupted") from None
    if code:
        raise SystemExit(code)


def _with_hint(exc: ClientError) -> str:
    if exc.status == 401 or exc.close_code == CloseCode.POLICY_VIOLATION:
        return f"{exc} (pass --token or set BATCHYARD_TOKEN)"
    return str(exc)


def client_options(command: F) -> F:
    """``--url`` and ``--token``, shared by every client command."""
    command = click.option(
        "--token",
        envvar="BATCHYARD_TOKEN",
        default=None,
        help="Bearer token, when the server requires one.",
        show_envvar=True,
    )(command)
    return click.option(
        "--url",
        envvar="BATCHYARD_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="Where the server listens.",
        show_envvar=True,
    )(command)


def make_client(url: str, token: str | None) -> BatchyardClient:
    """The client of the server at ``url``.

    Raises:
        Failed: ``url`` is not a server URL.
    """
    try:
        return BatchyardClient(url, token=token or None)
    except ClientError as exc:
        raise Failed(str(exc)) from None


def print_json(value: Any) -> None:
    """Print ``value`` as the API would encode it, on one line."""
    click.echo(jsontext.dumps(CONVERTER.unstructure(value)).decode().lstrip())


async def print_said(
    client: BatchyardClient, call: Callable[[BatchyardClient], Awaitable[str]]
) -> int:
    """Make one ``call`` with ``client`` and print the sentence it returns.

    Cancellation: may have partially happened (the call may have been made).

    Args:
        client: an unopened client; it is opened and closed here.
        call: makes the request and says what happened.

    Returns:
        0, the exit status.

    Raises:
        ClientError: the server refused or could not be reached.
    """
    async with client:
        said = await call(client)
    Console().print(said)
    return 0
