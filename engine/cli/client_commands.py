"""The client commands of ``batchyard``: they talk to a running server.

Design notes
------------
``engine.cli`` registers every command of ``COMMANDS`` on its group; this
module never imports it. Each command is a thin shell: parse flags, build
request bodies, run one async function under ``trio.run`` with a
``BatchyardClient``, print the answer. Human output goes through rich;
``--json`` prints the API's own camelCase shapes, one JSON document, for
scripts.

A failed command prints one line on stderr, ``batchyard: ...``, and exits
non-zero: 1 when the server refused or could not be reached (the line is the
``ClientError``'s), 2 for bad input (a flag, a ``--payload`` that is not
JSON, a bad ``--file`` line, named by its number), 3 when ``watch`` ended
because the server shut down before the run did, 130 on Ctrl-C. Click's own
usage errors are folded into the same one line by ``_Command``.

Jobs are checked here with the API's own ``JobSpec`` decoding before
anything is sent, so a bad line 9,000 of a file fails at once and creates
no batch. They are then sent ``_CHUNK`` at a time: the batch is created with
the first chunk and the rest are added to it, which keeps every request well
below any body size limit a server or proxy sets.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import IO, Any, TypeVar

import click
import orjson
import trio
from rich.console import Console
from rich.table import Table

from engine.cli.watch_view import WatchEnd, show_watch
from engine.client.errors import ClientError
from engine.client.http import DEFAULT_URL, BatchyardClient, StartOutcome
from protocols import api
from protocols.codec import CONVERTER
from protocols.errors import InvalidBody
from protocols.events import CloseCode

__all__ = ["COMMANDS"]

F = TypeVar("F", bound=Callable[..., Any])

#: Jobs per request. A thousand small jobs is a body of tens of kilobytes,
#: far below any usual limit, and few enough requests that submitting a
#: hundred thousand jobs takes seconds, not minutes.
_CHUNK = 1000

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_SERVER_GONE = 3
EXIT_INTERRUPTED = 130


# --- one line on failure ---------------------------------------------------------


class _Failed(click.ClickException):
    """The server refused or could not be reached; ``show`` prints the one line."""

    exit_code = EXIT_REFUSED

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"batchyard: {self.message}", err=True)


class _BadInput(_Failed):
    """A flag, a payload or a jobs file line that cannot be used."""

    exit_code = EXIT_USAGE


class _Interrupted(_Failed):
    """Ctrl-C."""

    exit_code = EXIT_INTERRUPTED


class _Command(click.Command):
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
            raise _BadInput(f"{exc.format_message()} (see '{name} --help')") from None


def _run(main: Callable[..., Awaitable[int]], *args: Any) -> None:
    """Run ``main`` under Trio; turn its outcome into an exit status."""
    try:
        code = trio.run(main, *args)
    except ClientError as exc:
        raise _Failed(_with_hint(exc)) from None
    except KeyboardInterrupt:
        raise _Interrupted("interrupted") from None
    if code:
        raise SystemExit(code)


def _with_hint(exc: ClientError) -> str:
    if exc.status == 401 or exc.close_code == CloseCode.POLICY_VIOLATION:
        return f"{exc} (pass --token or set BATCHYARD_TOKEN)"
    return str(exc)


def _client_options(command: F) -> F:
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


def _client(url: str, token: str | None) -> BatchyardClient:
    try:
        return BatchyardClient(url, token=token or None)
    except ClientError as exc:
        raise _Failed(str(exc)) from None


def _print_json(value: Any) -> None:
    click.echo(orjson.dumps(CONVERTER.unstructure(value)).decode())


# --- submit ------------------------------------------------------------------------


def _payload(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _BadInput(f"--payload is not JSON: {exc}") from None


def _jobs_from_lines(lines: Iterable[str], name: str) -> list[api.JobSpec]:
    """One job per non-blank line, each a job object as in the API."""
    jobs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            jobs.append(api.decode_body(line, api.JobSpec))
        except InvalidBody as exc:
            raise _BadInput(f"{name}, line {number}: {exc}") from None
    return jobs


def _jobs(count: int | None, payload: str | None, file: IO[str] | None) -> list[api.JobSpec]:
    if (count is None) == (file is None):
        raise _BadInput("give exactly one of --count N and --file JOBS.jsonl")
    if file is not None:
        if payload is not None:
            raise _BadInput("--payload goes with --count; a --file line has its own")
        return _jobs_from_lines(file, file.name)
    value = _payload("{}" if payload is None else payload)
    return [api.JobSpec(payload=value) for _ in range(count or 0)]


async def _enqueue(
    client: BatchyardClient, type: str, batch_id: str | None, jobs: Sequence[api.JobSpec]
) -> api.EnqueueResult:
    """Create the batch with the first chunk of ``jobs`` and add the rest."""
    first = await client.create_batch(type, jobs[:_CHUNK], batch_id=batch_id)
    enqueued, duplicates = first.enqueued, first.duplicates
    for at in range(_CHUNK, len(jobs), _CHUNK):
        more = await client.add_jobs(first.batch_id, jobs[at : at + _CHUNK])
        enqueued, duplicates = enqueued + more.enqueued, duplicates + more.duplicates
    return api.EnqueueResult(batch_id=first.batch_id, enqueued=enqueued, duplicates=duplicates)


async def _submit(
    client: BatchyardClient,
    type: str,
    batch_id: str | None,
    jobs: Sequence[api.JobSpec],
    start: bool,
    as_json: bool,
) -> int:
    async with client:
        result = await _enqueue(client, type, batch_id, jobs)
        outcome = await client.start(result.batch_id) if start else None
    if as_json:
        document = CONVERTER.unstructure(result)
        if outcome is not None:
            document["start"] = {"status": outcome.status, "retryAfter": outcome.retry_after}
        click.echo(orjson.dumps(document).decode())
    else:
        Console().print(
            f"batch {result.batch_id}: {result.enqueued} jobs enqueued, "
            f"{result.duplicates} duplicates skipped"
        )
    return 0 if outcome is None else _report_start(outcome, quiet=as_json)


@click.command(cls=_Command)
@click.option("--type", "type_", required=True, help="Job type of the batch's jobs.")
@click.option("--batch", "batch_id", help="Batch id; the server picks one when omitted.")
@click.option("--count", type=click.IntRange(min=1), help="Make COUNT jobs with --payload.")
@click.option("--payload", help="JSON payload of each --count job.  [default: {}]")
@click.option(
    "--file",
    "file",
    type=click.File("r", encoding="utf-8"),
    help="JSON Lines, one job object a line ('-' reads stdin).",
)
@click.option("--start", is_flag=True, help="Start processing the batch once submitted.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_client_options
def submit(
    type_: str,
    batch_id: str | None,
    count: int | None,
    payload: str | None,
    file: IO[str] | None,
    start: bool,
    as_json: bool,
    url: str,
    token: str | None,
) -> None:
    """Create a batch of jobs: COUNT alike, or one per line of a file.

    A file line is a job object as in the API: {"payload": ..., "type"?,
    "key"?, "priority"?, "delaySeconds"?}; blank lines are skipped.
    """
    jobs = _jobs(count, payload, file)
    _run(_submit, _client(url, token), type_, batch_id, jobs, start, as_json)


# --- start, retry, cancel, pause, resume -----------------------------------------


def _report_start(outcome: StartOutcome, *, quiet: bool = False) -> int:
    if outcome.status == "capacity-reached":
        wait = f"; retry in {outcome.retry_after} s" if outcome.retry_after is not None else ""
        click.echo(
            f"batchyard: batch {outcome.batch_id} not started: capacity reached{wait}", err=True
        )
        return EXIT_REFUSED
    if not quiet:
        said = "started" if outcome.status == "started" else "is already running"
        Console().print(f"batch {outcome.batch_id} {said}")
    return 0


async def _start(client: BatchyardClient, batch_id: str, wait: bool, as_json: bool) -> int:
    async with client:
        outcome = await client.start(batch_id)
        while wait and outcome.status == "capacity-reached":
            await trio.sleep(outcome.retry_after or 1)
            outcome = await client.start(batch_id)
    if as_json:
        _print_json(outcome)
    return _report_start(outcome, quiet=as_json)


@click.command(cls=_Command)
@click.argument("batch_id", metavar="BATCH")
@click.option("--wait", is_flag=True, help="When at capacity, retry until it starts.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@_client_options
def start(batch_id: str, wait: bool, as_json: bool, url: str, token: str | None) -> None:
    """Process every pending job of BATCH in a child process."""
    _run(_start, _client(url, token), batch_id, wait, as_json)


async def _call(client: BatchyardClient, call: Callable[[BatchyardClient], Awaitable[str]]) -> int:
    async with client:
        said = await call(client)
    Console().print(said)
    return 0


async def _retry(batch_id: str, client: BatchyardClient) -> str:
    requeued = await client.retry(batch_id)
    return f"batch {batch_id}: {requeued} failed jobs back to pending"


async def _cancel(batch_id: str, client: BatchyardClient) -> str:
    await client.cancel(batch_id)
    return f"batch {batch_id}: cancelled; its in-flight jobs go back to pending"


async def _pause(client: BatchyardClient) -> str:
    await client.pause()
    return "paused: no new jobs are handed out; running children finish what they hold"


async def _resume(client: BatchyardClient) -> str:
    await client.resume()
    return "resumed: jobs are handed out again"


@click.command(cls=_Command)
@click.argument("batch_id", metavar="BATCH")
@_client_options
def retry(batch_id: str, url: str, token: str | None) -> None:
    """Put the failed jobs of BATCH back to pending."""
    _run(_call, _client(url, token), functools.partial(_retry, batch_id))


@click.command(cls=_Command)
@click.argument("batch_id", metavar="BATCH")
@_client_options
def cancel(batch_id: str, url: str, token: str | None) -> None:
    """Stop BATCH while it runs; in-flight jobs go back to pending."""
    _run(_call, _client(url, token), functools.partial(_cancel, batch_id))


@click.command(cls=_Command)
@_client_options
def pause(url: str, token: str | None) -> None:
    """Stop handing out jobs; running children finish what they hold."""
    _run(_call, _client(url, token), _pause)


@click.command(cls=_Command)
@_client_options
def resume(url: str, token: str | None) -> None:
    """Hand out jobs again after pause."""
    _run(_call, _client(url, token), _resume)


# --- status ------------------------------------------------------------------------


def _batches_table(batches: Sequence[api.BatchView]) -> Table:
    table = Table("batch", "type", "running", "pending", "active", "completed", "failed")
    for view in batches:
        c = view.counts
        cells = (c.pending, c.active, c.completed, c.failed)
        table.add_row(view.batch_id, view.type, "yes" if view.running else "no", *map(str, cells))
    return table


def _engine_line(view: api.StatusView) -> str:
    running = ", ".join(view.running_batches) or "none"
    flags = [
        name
        for name, on in (("paused", view.paused), ("shutting down", view.is_shutting_down))
        if on
    ]
    tail = f"; {', '.join(flags)}" if flags else ""
    return f"engine: {view.active_batches} of {view.max_batches} batches running ({running}){tail}"


async def _status(client: BatchyardClient, batch_id: str | None, as_json: bool) -> int:
    async with client:
        if batch_id is not None:
            view = await client.get_batch(batch_id)
            if as_json:
                _print_json(view)
            else:
                Console().print(_batches_table([view]))
            return 0
        status = await client.status()
        batches = await client.list_batches()
    if as_json:
        _print_json({"engine": status, "batches": batches})
    else:
        console = Console()
        console.print(_engine_line(status))
        console.print(_batches_table(batches) if batches else "no batches")
    return 0


@click.command(cls=_Command)
@click.argument("batch_id", metavar="[BATCH]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
@_client_options
def status(batch_id: str | None, as_json: bool, url: str, token: str | None) -> None:
    """What the engine is doing, and every batch's counts (or one BATCH's).

    With --json: BATCH's view as the API gives it, or without BATCH
    {"engine": <GET /api/status>, "batches": [<GET /api/batches>...]}.
    """
    _run(_status, _client(url, token), batch_id, as_json)


# --- watch ---------------------------------------------------------------------------


@click.command(cls=_Command)
@click.argument("batch_id", metavar="[BATCH]", required=False)
@click.option("--follow", is_flag=True, help="Keep watching after the run ends.")
@_client_options
def watch(batch_id: str | None, follow: bool, url: str, token: str | None) -> None:
    """Live progress of BATCH until its run ends (every batch, without BATCH).

    Exits 0 when the run ended with done, 1 when it ended with an error, 3
    when the server shut down first.
    """
    _run(_watch, _client(url, token), batch_id, follow)


async def _watch(client: BatchyardClient, batch_id: str | None, follow: bool) -> int:
    async with client:
        result = await show_watch(client, batch_id, follow=follow, console=Console())
    if result.end is WatchEnd.SERVER_GONE:
        click.echo(f"batchyard: {result.detail}", err=True)
        return 0 if follow or batch_id is None else EXIT_SERVER_GONE
    return EXIT_REFUSED if result.end is WatchEnd.ERROR else 0


COMMANDS: tuple[click.Command, ...] = (
    submit,
    start,
    status,
    retry,
    cancel,
    pause,
    resume,
    watch,
)
