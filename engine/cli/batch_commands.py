"""The batch commands of ``batchyard``: submit, start, status, retry, cancel.

Design notes
------------
Each is a thin shell over one API call (see ``engine.cli.client_common``
for what they share: flags, Trio, one-line failures).

Jobs are checked here with the API's own ``JobSpec`` decoding before
anything is sent, so a bad line 9,000 of a file fails at once and creates
no batch. They are then sent ``_CHUNK`` at a time: the batch is created with
the first chunk and the rest are added to it, which keeps every request well
below any body size limit a server or proxy sets.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import IO, Any

import click
import orjson
import trio
from rich.console import Console
from rich.table import Table

from engine.cli.client_common import (
    EXIT_REFUSED,
    BadInput,
    OneLineCommand,
    client_options,
    make_client,
    print_json,
    print_said,
    run_client,
)
from engine.client.http import BatchyardClient, StartOutcome
from protocols import api, jsontext
from protocols.codec import CONVERTER
from protocols.errors import InvalidBody

__all__ = ["BATCH_COMMANDS"]

#: Jobs per request. A thousand small jobs is a body of tens of kilobytes,
#: far below any usual limit, and few enough requests that submitting a
#: hundred thousand jobs takes seconds, not minutes.
_CHUNK = 1000

# --- submit ------------------------------------------------------------------------


def _payload(text: str) -> Any:
    try:
        return jsontext.load_any(text)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"--payload is not JSON: {exc}") from None


def _jobs_from_lines(lines: Iterable[str], name: str) -> list[api.JobSpec]:
    """One job per non-blank line, each a job object as in the API."""
    jobs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            jobs.append(api.decode_body(line, api.JobSpec))
        except InvalidBody as exc:
            raise BadInput(f"{name}, line {number}: {exc}") from None
    return jobs


def _jobs(count: int | None, payload: str | None, file: IO[str] | None) -> list[api.JobSpec]:
    if (count is None) == (file is None):
        raise BadInput("give exactly one of --count N and --file JOBS.jsonl")
    if file is not None:
        if payload is not None:
            raise BadInput("--payload goes with --count; a --file line has its own")
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
        print_json(document)
    else:
        Console().print(
            f"batch {result.batch_id}: {result.enqueued} jobs enqueued, "
            f"{result.duplicates} duplicates skipped"
        )
    return 0 if outcome is None else _report_start(outcome, quiet=as_json)


@click.command(cls=OneLineCommand)
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
@client_options
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
    run_client(_submit, make_client(url, token), type_, batch_id, jobs, start, as_json)


# --- start, retry, cancel ----------------------------------------------------------


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
        print_json(outcome)
    return _report_start(outcome, quiet=as_json)


@click.command(cls=OneLineCommand)
@click.argument("batch_id", metavar="BATCH")
@click.option("--wait", is_flag=True, help="When at capacity, retry until it starts.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@client_options
def start(batch_id: str, wait: bool, as_json: bool, url: str, token: str | None) -> None:
    """Process every pending job of BATCH in a child process."""
    run_client(_start, make_client(url, token), batch_id, wait, as_json)


async def _retry(batch_id: str, client: BatchyardClient) -> str:
    requeued = await client.retry(batch_id)
    return f"batch {batch_id}: {requeued} failed jobs back to pending"


async def _cancel(batch_id: str, client: BatchyardClient) -> str:
    await client.cancel(batch_id)
    return f"batch {batch_id}: cancelled; its in-flight jobs go back to pending"


@click.command(cls=OneLineCommand)
@click.argument("batch_id", metavar="BATCH")
@client_options
def retry(batch_id: str, url: str, token: str | None) -> None:
    """Put the failed jobs of BATCH back to pending."""
    run_client(print_said, make_client(url, token), functools.partial(_retry, batch_id))


@click.command(cls=OneLineCommand)
@click.argument("batch_id", metavar="BATCH")
@client_options
def cancel(batch_id: str, url: str, token: str | None) -> None:
    """Stop BATCH while it runs; in-flight jobs go back to pending."""
    run_client(print_said, make_client(url, token), functools.partial(_cancel, batch_id))


# --- status ------------------------------------------------------------------------


def _batches_table(batches: Sequence[api.BatchView]) -> Table:
    table = Table("batch", "type", "running on", "pending", "active", "completed", "failed")
    for view in batches:
        c = view.counts
        cells = (c.pending, c.active, c.completed, c.failed)
        runner = (view.engine_id or "an engine") if view.running else "-"
        table.add_row(view.batch_id, view.type, runner, *map(str, cells))
    return table


def _engine_line(view: api.StatusView) -> str:
    running = ", ".join(view.running_batches) or "none"
    flags = [
        name
        for name, on in (("paused", view.paused), ("shutting down", view.is_shutting_down))
        if on
    ]
    tail = f"; {', '.join(flags)}" if flags else ""
    here = f"engine {view.engine_id}: {view.active_batches} of {view.max_batches} batches"
    lines = [f"{here} running ({running}){tail}"]
    for other in view.engines:
        if other.engine_id != view.engine_id:
            batches = ", ".join(other.running_batches) or "none"
            lines.append(
                f"engine {other.engine_id} ({other.host}, pid {other.pid}): "
                f"{len(other.running_batches)} of {other.max_batches} batches running ({batches})"
            )
    return "\n".join(lines)


async def _status(client: BatchyardClient, batch_id: str | None, as_json: bool) -> int:
    async with client:
        if batch_id is not None:
            view = await client.get_batch(batch_id)
            if as_json:
                print_json(view)
            else:
                Console().print(_batches_table([view]))
            return 0
        status = await client.status()
        batches = await client.list_batches()
    if as_json:
        print_json({"engine": status, "batches": batches})
    else:
        console = Console()
        console.print(_engine_line(status))
        console.print(_batches_table(batches) if batches else "no batches")
    return 0


@click.command(cls=OneLineCommand)
@click.argument("batch_id", metavar="[BATCH]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
@client_options
def status(batch_id: str | None, as_json: bool, url: str, token: str | None) -> None:
    """What the engine is doing, and every batch's counts (or one BATCH's).

    With --json: BATCH's view as the API gives it, or without BATCH
    {"engine": <GET /api/status>, "batches": [<GET /api/batches>...]}.
    """
    run_client(_status, make_client(url, token), batch_id, as_json)


BATCH_COMMANDS: tuple[click.Command, ...] = (submit, start, status, retry, cancel)
