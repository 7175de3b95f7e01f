"""The dashboard in Debian's chromium against a real ``batchyard serve``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.browser.server import Server, serve


def _create(page: Any, job_type: str, payload: str, count: int, batch_id: str) -> Any:
    """Create a batch through the page's form; its row."""
    page.select_option("#create-type", job_type)
    page.fill("#create-payload", payload)
    page.fill("#create-count", str(count))
    page.fill("#create-id", batch_id)
    page.get_by_role("button", name="Create batch").click()
    expect(page.locator("#create-message")).to_contain_text(f"Created {batch_id}")
    return page.locator(f'#batches tr[data-batch="{batch_id}"]')


def _open(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    expect(page.locator("#live-state")).to_have_text("● live")
    expect(page.locator("#create-type option[value=noop]")).to_have_count(1)


def test_page_loads_with_no_console_error_under_its_policy(page: Any, tmp_path: Path) -> None:
    with serve(tmp_path / "s.db") as server:
        with server.client() as client:
            client.post("/api/batches", json={"batchId": "seen", "type": "noop", "jobs": [{}]})
            answer = client.get("/")
        _open(page, server)
        row = page.locator('#batches tr[data-batch="seen"]')
        expect(row).to_contain_text("0 / 1 (0 %)")
        expect(page.locator("#engine-status")).to_contain_text("0 of 1 batches running")
        expect(page.locator("#engines tbody tr")).to_have_count(1)
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script" in answer.text and "<script>" not in answer.text
    assert "style=" not in answer.text and "<style" not in answer.text
