"""The per-job commands of ``batchyard``: ``job``, ``cancel-job``, ``retry-job``.

Each is one API call (``GET /api/jobs/{jobId}``, ``POST .../cancel``,
``POST .../retry``) through the client, printed as one line, or as the
API's JSON with ``--json``; see ``engine.cli.client_common`` for the flags
and one-line failures they share.
"""

from __future__ import annotations

import functools

import click

from engine.cli.client_common import (
    OneLineCommand,
    client_options,
    make_client,
    print_json,
    print_said,
    run_client,
)
from engine.client.http import BatchyardClient
from protocols import api

__all__ = ["JOB_COMMANDS"]


def _describe(job: api.JobView) -> str:
    parts = [f"job {job.job_id} (batch {job.batch_id}, type {job.type}): {job.state.value}"]
    parts.append(f"attempts {job.attempts}")
    if job.progress is not None:
        parts.append(f"progress {job.progress:g}%")
    if job.started_at is not None:
        parts.append(f"started {job.started_at.isoformat()}")
    if job.finished_at is not None:
        parts.append(f"finished {job.finished_at.isoformat()}")
    if job.error is not None:
        parts.append(f"error: {job.error}")
    return ", ".join(parts)


async def _show(client: BatchyardClient, job_id: str, as_json: bool) -> int:
    async with client:
        job = await client.get_job(job_id)
    if as_json:
        print_json(job)
    else:
        click.echo(_describe(job))
    return 0


async def _cancel(job_id: str, client: BatchyardClient) -> str:
    answer = await client.cancel_job(job_id)
    job = await client.get_job(job_id)
    why = f" ({job.error})" if job.error else ""
    return f"job {answer.job_id}: {answer.state.value}{why}"


async def _retry(job_id: str, client: BatchyardClient) -> str:
    answer = await client.retry_job(job_id)
    return f"job {answer.job_id}: {answer.state.value} again"


@click.command(cls=OneLineCommand)
@click.argument("job_id", metavar="JOB_ID")
@click.option("--json", "as_json", is_flag=True, help="Print the API's answer as JSON.")
@client_options
def job(job_id: str, as_json: bool, url: str, token: str | None) -> None:
    """Show one job: its state, attempts, progress, times and error."""
    run_client(_show, make_client(url, token), job_id, as_json)


@click.command("cancel-job", cls=OneLineCommand)
@click.argument("job_id", metavar="JOB_ID")
@client_options
def cancel_job(job_id: str, url: str, token: str | None) -> None:
    """Cancel one job: pending ones fail at once, active ones are stopped in their child."""
    run_client(print_said, make_client(url, token), functools.partial(_cancel, job_id))


@click.command("retry-job", cls=OneLineCommand)
@click.argument("job_id", metavar="JOB_ID")
@client_options
def retry_job(job_id: str, url: str, token: str | None) -> None:
    """Put one failed job back to pending."""
    run_client(print_said, make_client(url, token), functools.partial(_retry, job_id))


JOB_COMMANDS: tuple[click.Command, ...] = (job, cancel_job, retry_job)
