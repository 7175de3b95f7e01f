"""``batchyard demo --serve``: the demo on an engine served over HTTP, its
dashboard left up at the printed address until Ctrl-C (SIGINT or SIGTERM).

The server and the demo share one engine. The demo runs as a task beside
the server; when a stop signal comes the server drains the engine as
``batchyard serve`` does, and a demo still going is cancelled with it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
from rich.console import Console

from engine.cli.demo import DemoSummary, demo_on, demo_settings
from engine.core.signals import single_engine_error, stop_signals
from engine.core.startup import open_engine
from engine.server.serve import check_exposure, serve_engine

__all__ = ["serve_demo"]


async def serve_demo(
    *, host: str = "127.0.0.1", port: int = 8000, console: Console | None = None
) -> DemoSummary | None:
    """Serve a demo engine on ``host:port``, run the demo on it, and keep
    serving until a stop signal.

    Returns:
        The demo's summary, or None when it was stopped before the end.

    Raises:
        ConfigError: the address cannot be listened on.
    """
    console = console or Console()
    summary: DemoSummary | None = None
    with (
        tempfile.TemporaryDirectory(prefix="batchyard-demo-") as directory,
        stop_signals() as signals,
        single_engine_error(),
    ):
        settings = demo_settings(Path(directory))
        check_exposure(host, settings, insecure_no_auth=False)
        async with open_engine(settings) as engine, trio.open_nursery() as nursery:

            async def serving(task_status: trio.TaskStatus[str]) -> None:
                await serve_engine(
                    engine, host=host, port=port, stop_requests=signals, task_status=task_status
                )
                nursery.cancel_scope.cancel()  # a demo still going ends with the server

            url = await nursery.start(serving)
            console.print(f"dashboard: {url}/ (Ctrl-C to stop)")
            summary = await demo_on(engine, console)
            console.print(f"demo done; the dashboard stays up at {url}/ until Ctrl-C")
    return summary
