"""The dashboard in Debian's chromium against a real ``batchyard serve``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.browser.server import Server


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


def test_page_loads_with_no_console_error_under_its_policy(page: Any, start_server: Any) -> None:
    server = start_server()
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


def _row(page: Any, batch_id: str) -> Any:
    return page.locator(f'#batches tr[data-batch="{batch_id}"]')


def test_a_started_batch_reaches_100_percent_and_start_is_disabled_while_it_runs(
    page: Any, start_server: Any
) -> None:
    server = start_server()
    _open(page, server)
    row = _create(page, "sleep", '{"seconds": 1}', 12, "slow")
    start = row.get_by_role("button", name="Start")
    expect(start).to_be_enabled()
    start.click()
    expect(start).to_be_disabled()
    expect(row).to_contain_text("running on", timeout=15_000)
    expect(row).to_contain_text("jobs/s", timeout=15_000)
    screenshot(page, "dashboard")
    expect(start).to_be_disabled()
    expect(row).to_contain_text("12 / 12 (100 %)", timeout=30_000)
    expect(row.locator("progress")).to_have_attribute("value", "12")
    expect(row).to_contain_text("idle", timeout=15_000)
    expect(start).to_be_enabled()
    expect(row).to_contain_text("0 · 0 · 12 · 0", timeout=15_000)


def test_a_second_start_shows_already_running(page: Any, start_server: Any) -> None:
    server = start_server()
    # This page hears nothing live: it learns the run from the 202 alone.
    page.route_web_socket(re.compile(r".*/ws\?.*"), lambda ws: None)
    _open(page, server)
    row = _create(page, "sleep", '{"seconds": 1}', 6, "twice")
    with server.client() as client:
        first = client.post("/api/jobs/process/all/twice")
    assert first.status_code == 200
    row.get_by_role("button", name="Start").click()
    expect(row.locator(".notice")).to_have_text("already running")
    expect(row.get_by_role("button", name="Start")).to_be_disabled()
    expect(row).to_contain_text("running on")


def test_capacity_reached_shows_a_countdown_then_start_comes_back(
    page: Any, start_server: Any
) -> None:
    server = start_server(MAX_ACTIVE_BATCHES="1")
    page.console_errors.allowed.add(429)  # the answer this test asks for
    _open(page, server)
    first = _create(page, "sleep", '{"seconds": 2}', 20, "first")
    second = _create(page, "noop", "{}", 3, "second")
    first.get_by_role("button", name="Start").click()
    expect(first).to_contain_text("running on")
    start = second.get_by_role("button", name="Start")
    start.click()
    notice = second.locator(".notice")
    expect(notice).to_contain_text("capacity reached")
    expect(notice).to_contain_text(re.compile(r"start again in \d+ s"))
    expect(start).to_be_disabled()
    screenshot(page, "capacity")
    expect(start).to_be_enabled(timeout=10_000)
    expect(notice).not_to_contain_text("start again")
    first.get_by_role("button", name="Cancel").click()
    expect(first).to_contain_text("idle", timeout=20_000)
    start.click()
    expect(second).to_contain_text("3 / 3 (100 %)", timeout=30_000)


def test_a_failed_job_shows_its_error_and_retry_failed_reruns_it(
    page: Any, start_server: Any, tmp_path: Path
) -> None:
    server = start_server()
    _open(page, server)
    markers = tmp_path / "markers"
    markers.mkdir()
    payload = json.dumps({"dir": str(markers)})
    row = _create(page, "fails-first-run", payload, 3, "shaky")
    row.get_by_role("button", name="Start").click()
    expect(row).to_contain_text("3 / 3 (100 %)", timeout=30_000)
    expect(row).to_contain_text("0 · 0 · 0 · 3")
    row.get_by_role("button", name="shaky").click()
    jobs = page.locator("#jobs tbody tr")
    expect(jobs).to_have_count(3)
    expect(jobs.first).to_contain_text("the first run of this job fails on purpose")
    screenshot(page, "failed-jobs")
    row.get_by_role("button", name="Retry failed").click()
    expect(row.locator(".notice")).to_have_text("3 failed jobs back to pending")
    expect(row).to_contain_text("3 · 0 · 0 · 0")
    row.get_by_role("button", name="Start").click()
    expect(row).to_contain_text("0 · 0 · 3 · 0", timeout=30_000)
    expect(page.locator("#event-log li").first).to_contain_text("run done: 3 completed")
    page.select_option("#jobs-state", "completed")
    expect(jobs).to_have_count(3)
    expect(jobs.first).to_contain_text("completed")


def test_the_token_is_asked_once_and_again_after_a_401(page: Any, start_server: Any) -> None:
    server = start_server(BATCHYARD_TOKEN="s3cret")
    page.console_errors.allowed.add(401)  # the answer this test asks for
    page.goto(server.url + "/")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    screenshot(page, "token")
    page.fill("#token-input", "wrong")
    page.get_by_role("button", name="Use this token").click()
    expect(page.locator("#token-reason")).to_have_text("The token was refused.")
    expect(dialog).to_be_visible()
    page.fill("#token-input", "s3cret")
    page.get_by_role("button", name="Use this token").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#engine-status")).to_contain_text("batches running")
    expect(page.locator("#live-state")).to_have_text("● live")
    page.reload()
    expect(page.locator("#live-state")).to_have_text("● live")
    expect(dialog).to_be_hidden()


_UNLABELLED = """
() => [...document.querySelectorAll("button, input, select, textarea, progress")]
  .filter((el) => !el.closest("[hidden]") && !el.closest("dialog:not([open])"))
  .filter((el) => !((el.labels && el.labels.length) || el.getAttribute("aria-label")
    || (el.tagName === "BUTTON" && el.textContent.trim())))
  .map((el) => el.outerHTML)
"""


def test_controls_are_labelled_reachable_by_keyboard_and_errors_are_shown(
    page: Any, start_server: Any
) -> None:
    server = start_server()
    page.console_errors.allowed.add(409)  # the duplicate id this test submits
    page.emulate_media(color_scheme="dark")
    _open(page, server)
    row = _create(page, "echo", '{"hello": "world"}', 2, "labelled")
    assert page.evaluate(_UNLABELLED) == []
    screenshot(page, "dashboard-dark")
    # The same id again: the server's own message is shown.
    page.get_by_role("button", name="Create batch").click()
    expect(page.locator("#create-message")).to_contain_text("labelled")
    expect(page.locator("#create-message")).not_to_contain_text("Created")
    # Keyboard only: focus the batch's Start button by tabbing and press Enter.
    start = row.get_by_role("button", name="Start")
    for _ in range(60):
        page.keyboard.press("Tab")
        if start.evaluate("el => el === document.activeElement"):
            break
    else:
        raise AssertionError("the Start button is not reachable with Tab")
    page.keyboard.press("Enter")
    expect(row).to_contain_text("2 / 2 (100 %)", timeout=30_000)
    # Pause and resume the engine: told in words, not by colour alone.
    toggle = page.get_by_role("button", name="Pause engine")
    toggle.click()
    expect(page.locator("#engine-status")).to_contain_text("paused")
    expect(page.get_by_role("button", name="Resume engine")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.get_by_role("button", name="Resume engine").click()
    expect(page.locator("#engine-status")).not_to_contain_text("paused")


def test_the_live_feed_resumes_from_its_last_seq_after_a_disconnect(
    page: Any, start_server: Any
) -> None:
    server = start_server()
    feeds: list[Any] = []

    def relay(feed: Any) -> None:  # the page's socket, passed through to the server
        feed.connect_to_server()
        feeds.append(feed)

    page.route_web_socket(re.compile(r".*/ws\?.*"), relay)
    _open(page, server)
    row = _create(page, "sleep", '{"seconds": 0.4}', 10, "resumed")
    row.get_by_role("button", name="resumed").click()  # its event log records every seq
    row.get_by_role("button", name="Start").click()
    expect(row).to_contain_text(re.compile(r"[1-9]\d* / 10"), timeout=20_000)
    feeds[0].close(code=1011, reason="cut off")
    expect(page.locator("#live-state")).to_have_text("● live")
    expect(row).to_contain_text("10 / 10 (100 %)", timeout=30_000)
    expect(row).to_contain_text("idle")
    assert "resumeFrom" not in feeds[0].url
    resumed = re.search(r"resumeFrom=(\d+)", feeds[1].url)
    assert resumed and int(resumed.group(1)) >= 2, feeds[1].url
    expect(page.locator("#event-log li").first).to_contain_text("run done")
    seqs = [int(line.split()[0][1:]) for line in page.locator("#event-log li").all_inner_texts()]
    assert seqs == list(range(seqs[0], seqs[0] - len(seqs), -1)), seqs  # none lost, none twice
    assert seqs[-1] == 1  # from the run's first event
