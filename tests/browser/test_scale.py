"""The dashboard at scale: 1,000 batches stay paged, and 10,000 live events
are applied with one render per animation frame at most. The time it took
and the page's weight are measured in the browser and printed (never
asserted: they depend on the machine)."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import screenshot

EVENTS = 10_000
JOBS = (EVENTS - 1) // 3  # three events per job, and one last progress

# Resolves once the row shows every job finished: when it first changed,
# when it was done, and in how many of the frames between it changed.
_WAIT_FOR_ALL = """
(text) => { window.allApplied = new Promise((resolve) => {
  const row = document.querySelector('#batches tr[data-batch="hot"]');
  let frames = 0;
  let changedFrames = 0;
  let last = row.textContent;
  const check = () => {
    frames += 1;
    if (row.textContent !== last) {
      if (changedFrames === 0) window.firstChangeAt = performance.now();
      changedFrames += 1;
      last = row.textContent;
    }
    if (last.includes(text)) {
      resolve({ at: performance.now(), first: window.firstChangeAt, frames, changedFrames });
    } else {
      requestAnimationFrame(check);
    }
  };
  requestAnimationFrame(check);
}); }
"""

_WEIGHT = """
() => performance.getEntriesByType("navigation").concat(
  performance.getEntriesByType("resource").filter((e) => e.initiatorType !== "fetch"
    && e.initiatorType !== "xmlhttprequest"))
  .map((e) => ({ name: e.name, bytes: e.decodedBodySize }))
"""


def _frames() -> list[list[dict[str, Any]]]:
    """The events, in messages of 100 frames as ``?batch=1`` sends them."""
    frames: list[dict[str, Any]] = []
    for n in range(JOBS):
        job = f"job-{n}"
        frames.append(
            {
                "event": "job:progress",
                "data": {
                    "batchId": "hot",
                    "jobId": job,
                    "status": "active",
                    "progress": 0,
                    "startedAt": 1.0,
                },
            }
        )
        frames.append(
            {
                "event": "job:progress",
                "data": {"batchId": "hot", "jobId": job, "status": "completed"},
            }
        )
        frames.append(
            {
                "event": "processing:progress",
                "data": {
                    "batchId": "hot",
                    "completed": n + 1,
                    "failed": 0,
                    "total": JOBS,
                    "etaSeconds": (JOBS - n - 1) / 100,
                },
            }
        )
    frames.append(
        {
            "event": "processing:progress",
            "data": {
                "batchId": "hot",
                "completed": JOBS,
                "failed": 0,
                "total": JOBS,
                "etaSeconds": 0,
            },
        }
    )
    for seq, frame in enumerate(frames, 1):
        frame["seq"] = seq
    assert len(frames) == EVENTS
    return [frames[i : i + 100] for i in range(0, EVENTS, 100)]


def test_ten_thousand_events_and_a_thousand_batches(page: Any, start_server: Any) -> None:
    server = start_server()
    with server.client() as client:
        for n in range(1000):
            answer = client.post(
                "/api/batches", json={"batchId": f"b{n:04}", "type": "noop", "jobs": [{}]}
            )
            assert answer.status_code == 201
        answer = client.post(
            "/api/batches", json={"batchId": "hot", "type": "noop", "jobs": [{}] * JOBS}
        )
        assert answer.status_code == 201
    sockets: list[Any] = []
    page.route_web_socket(re.compile(r".*/ws\?.*"), lambda ws: sockets.append(ws))  # the feed
    page.goto(server.url + "/")
    expect(page.locator("#batches-summary")).to_have_text("1001 batches, 0 running.")
    expect(page.locator("#batches-page")).to_have_text("page 1 of 21")
    expect(page.locator("#batches tbody tr")).to_have_count(50)
    page.locator('#batches tr[data-batch="hot"]').get_by_role("button", name="hot").click()
    expect(page.locator("#jobs tbody tr")).to_have_count(50)
    page.evaluate(_WAIT_FOR_ALL, f"{JOBS} / {JOBS} (100 %)")
    messages = _frames()
    began = page.evaluate("performance.now()")
    for message in messages:
        sockets[0].send(json.dumps(message))
    result = page.evaluate("window.allApplied")
    applied_ms = result["at"] - began  # from the first send: transport included
    log = page.locator("#event-log li")
    expect(log).to_have_count(200)  # bounded
    expect(log.first).to_contain_text(f"#{EVENTS} ")
    weight = page.evaluate(_WEIGHT)
    total = sum(entry["bytes"] for entry in weight)
    screenshot(page, "scale")
    page.get_by_role("button", name="Next page").first.click()
    expect(page.locator("#batches-page")).to_have_text("page 2 of 21")
    expect(page.locator("#batches tbody tr")).to_have_count(50)
    assert result["changedFrames"] <= result["frames"]
    files = [(entry["name"].rsplit("/", 1)[-1] or "/", entry["bytes"]) for entry in weight]
    print(
        f"\n{EVENTS} events applied in {applied_ms:.0f} ms from the first send, "
        f"{result['at'] - result['first']:.0f} ms from the first change on screen "
        f"({result['changedFrames']} renders in {result['frames']} frames); "
        f"page weight {total} bytes: {files}"
    )


BIG = 100_000
BIG_CHUNK = 10_000

# Clicks `selector` and resolves, on the first frame where the jobs table
# shows 50 rows whose first job is not `before`, with the time it took;
# rejects after 30 s.
_TIME_JOBS_PAGE = """
([selector, before]) => new Promise((resolve, reject) => {
  const began = performance.now();
  setTimeout(() => reject(new Error("no new jobs page in 30 s")), 30000);
  document.querySelector(selector).click();
  const check = () => {
    const rows = document.querySelectorAll("#jobs tbody tr");
    const cell = rows.length ? rows[0].querySelector("td") : null;
    const first = cell ? cell.textContent : "";
    if (!document.getElementById("detail").hidden && rows.length === 50 && first !== before) {
      resolve({ ms: performance.now() - began, first });
    } else {
      requestAnimationFrame(check);
    }
  };
  requestAnimationFrame(check);
})
"""


def test_a_batch_of_a_hundred_thousand_jobs(page: Any, start_server: Any) -> None:
    """The dashboard reads a 100,000-job batch a page of 50 jobs at a time:
    the row shows the counts, the batch's view and its next jobs page come
    quickly (printed, not asserted)."""
    server = start_server()
    with server.client() as client:
        client.timeout = 60
        answer = client.post(
            "/api/batches", json={"batchId": "big", "type": "noop", "jobs": [{}] * BIG_CHUNK}
        )
        assert answer.status_code == 201
        for _ in range(BIG // BIG_CHUNK - 1):
            answer = client.post("/api/batches/big/jobs", json={"jobs": [{}] * BIG_CHUNK})
            assert answer.status_code == 201
            assert answer.json()["enqueued"] == BIG_CHUNK
    page.goto(server.url + "/")
    row = page.locator('#batches tr[data-batch="big"]')
    expect(row).to_contain_text(f"{BIG} · 0 · 0 · 0")
    expect(row).to_contain_text(f"0 / {BIG} (0 %)")
    opened = page.evaluate(_TIME_JOBS_PAGE, ['#batches tr[data-batch="big"] button.link', ""])
    expect(page.locator("#detail-heading")).to_have_text("Batch big")
    expect(page.locator("#jobs tbody tr")).to_have_count(50)
    expect(page.locator("#jobs-next")).to_be_enabled()
    expect(page.locator("#jobs-first")).to_be_disabled()
    first_page = page.locator("#jobs tbody tr td:first-child").all_text_contents()
    assert len(set(first_page)) == 50
    screenshot(page, "big-batch")
    following = page.evaluate(_TIME_JOBS_PAGE, ["#jobs-next", opened["first"]])
    expect(page.locator("#jobs tbody tr")).to_have_count(50)
    expect(page.locator("#jobs-first")).to_be_enabled()
    second_page = page.locator("#jobs tbody tr td:first-child").all_text_contents()
    assert not set(first_page) & set(second_page)
    expect(page.locator("#jobs tbody tr").first).to_contain_text("pending")
    print(
        f"\n{BIG} jobs: batch view with its first 50 jobs in {opened['ms']:.0f} ms, "
        f"next page in {following['ms']:.0f} ms"
    )
