"""``GET /``: a small HTML page about the server and its batches.

Every value that came from outside (batch ids, types) is escaped; the page
has no script and loads nothing, so it works with any content policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from engine.core.engine import Engine
from engine.store import BatchRecord

__all__ = ["DashboardPage"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}"
    "table{border-collapse:collapse}td,th{padding:.2rem .8rem;text-align:right}"
    "td:first-child,th:first-child{text-align:left}code{background:#eee;padding:0 .2rem}"
)


def _row(batch: BatchRecord, running: bool) -> str:
    c = batch.counts
    cells = [batch.batch_id, batch.type, "running" if running else "idle"]
    cells += [str(n) for n in (c.pending, c.active, c.completed, c.failed)]
    return "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>"


def _table(rows: Iterable[str]) -> str:
    body = "".join(rows)
    if not body:
        return "<p>No batches yet.</p>"
    head = "".join(
        f"<th>{name}</th>"
        for name in ("batch", "type", "", "pending", "active", "completed", "failed")
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class DashboardPage:
    """Renders the page for one engine.

    Args:
        engine: the engine whose batches are listed.
        version: the server's version.
    """

    def __init__(self, engine: Engine, version: str) -> None:
        self._engine = engine
        self._version = version

    async def endpoint(self, request: Request) -> Response:
        """``GET /``: the page.

        Cancellation: atomic (only reads).

        Raises:
            StoreError: the store did not answer (the API answers 503).
        """
        engine = self._engine
        batches = await engine.list_batches()
        rows = (_row(batch, engine.is_running(batch.batch_id)) for batch in batches)
        status = engine.status()
        html = (
            "<!doctype html><html lang=en><meta charset=utf-8>"
            f"<title>batchyard {escape(self._version)}</title><style>{_STYLE}</style>"
            f"<h1>batchyard {escape(self._version)}</h1>"
            f"<p>Limits: <code>{escape(engine.settings.describe())}</code></p>"
            f"<p>{status.active_batches} of {status.max_batches} batches running"
            f"{' (paused)' if status.paused else ''}"
            f"{' (shutting down)' if status.is_shutting_down else ''}.</p>"
            f"<h2>Batches</h2>{_table(rows)}"
            '<p>API: <a href="/openapi.json">/openapi.json</a> · '
            "events: <code>GET /api/events</code>, <code>WS /ws</code> · "
            '<a href="/metrics">/metrics</a> · <a href="/health">/health</a></p></html>'
        )
        return HTMLResponse(html)
