"""Fixtures of the browser tests: Debian's chromium driven by Playwright,
and a page that fails its test on any console error.

The browser is found by path (``BATCHYARD_CHROMIUM``, default
``/usr/bin/chromium``) and never downloaded. Without it, or without
Playwright, the tests skip, except under ``CI=true`` where they fail.

Screenshots go to the folder ``BATCHYARD_SCREENSHOTS`` names (the
README's pictures: ``docs/screenshots``), else to a folder under the
system's temporary directory, so a test run leaves the checkout as it was.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.browser.server import Server, serve

CHROMIUM = Path(os.environ.get("BATCHYARD_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(
    os.environ.get("BATCHYARD_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / "batchyard-screenshots"
)


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing (CI=true: browser tests may not skip)")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright")
    if not CHROMIUM.exists():
        _missing(str(CHROMIUM))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


_STATUS_LINE = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")


class ConsoleErrors(list[str]):
    """Every console error and uncaught exception of a page. Chromium also
    logs each HTTP error status a request got as a console error; those of
    ``allowed`` (a 429 the test provoked on purpose) are not the page's fault."""

    def __init__(self) -> None:
        super().__init__()
        self.allowed: set[int] = set()

    def unexpected(self) -> list[str]:
        return [
            line
            for line in self
            if not ((m := _STATUS_LINE.match(line)) and int(m.group(1)) in self.allowed)
        ]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``start_server(**env)``: a real ``batchyard serve`` on its own store,
    stopped after the test's page is closed."""
    with ExitStack() as stack:
        yield lambda **env: stack.enter_context(serve(tmp_path / "store.db", **env))


@pytest.fixture
def page(browser: Any, start_server: Callable[..., Server]) -> Iterator[Any]:
    """A fresh page (its own context, so its own sessionStorage); the test
    fails if the page logged any console error or threw. Closed before the
    test's servers stop."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors = ConsoleErrors()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.console_errors = errors
    yield page
    context.close()
    assert not errors.unexpected(), f"console errors: {errors}"


def screenshot(page: Any, name: str) -> None:
    """Save the page as ``NAME.png`` in ``SCREENSHOTS``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
