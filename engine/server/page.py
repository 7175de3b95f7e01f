"""``GET /`` and ``GET /static/{name}``: the dashboard's files.

Design notes
------------
The dashboard is static: one HTML page, its JavaScript modules, one
stylesheet and an icon, all in ``engine/server/static`` (shipped in the
wheel). It reads everything it shows from the API and the ``/ws`` feed, so
the server renders nothing for it. The files are read once, when the app is
built, and served from memory under a fixed list of names; any other name is
a 404, so no request ever reaches the file system.

Every answer carries a strict content security policy: scripts, styles and
connections from this origin only, no inline script or style, no framing.
The files are not behind the token (they hold no data); the page asks its
user for the token when the API answers 401.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.server.errors import RequestError

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "dashboard_routes"]

STATIC_DIR = Path(__file__).with_name("static")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@attrs.frozen
class _File:
    body: bytes
    media_type: str
    etag: str


def _load(directory: Path) -> Mapping[str, _File]:
    files = {}
    for path in sorted(directory.iterdir()):
        if path.suffix in _TYPES:
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            files[path.name] = _File(body, _TYPES[path.suffix], etag)
    return files


def _answer(request: Request, file: _File) -> Response:
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
        "ETag": file.etag,
    }
    if request.headers.get("if-none-match") == file.etag:
        return Response(status_code=304, headers=headers)
    return Response(file.body, media_type=file.media_type, headers=headers)


def dashboard_routes(directory: Path = STATIC_DIR) -> list[BaseRoute]:
    """The page at ``/`` and its files at ``/static/{name}``.

    Raises:
        FileNotFoundError: ``directory`` has no ``index.html``.
    """
    files = _load(directory)
    index = files["index.html"]

    async def page(request: Request) -> Response:
        return _answer(request, index)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        file = files.get(name)
        if file is None:
            raise RequestError(404, "not-found", f"no file {name!r:.80} here")
        return _answer(request, file)

    return [
        Route("/", page, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
    ]
