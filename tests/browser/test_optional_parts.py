"""Parts of the API a server may lack (per-job actions, schedules, a running
batch's child): the page shows them when the server has them, and stays
quiet when it does not. The server here lacks them, so the browser answers
for them (``page.route``) on top of the real server's answers."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import screenshot

_SCHEDULE = {
    "name": "nightly-embeddings",
    "cron": "0 3 * * *",
    "type": "noop",
    "nextRunAt": "2026-12-01T03:00:00+00:00",
    "lastRunAt": None,
}
_CHILD = {"pid": 4242, "rssBytes": 52_428_800, "cpuSeconds": 1.5, "jobsRun": 3}


def test_schedules_child_and_job_buttons_show_when_the_server_has_them(
    page: Any, start_server: Any
) -> None:
    server = start_server()
    with server.client() as client:
        jobs = [{"payload": {"seconds": 30}}] * 6  # still running when the test ends
        client.post("/api/batches", json={"batchId": "kids", "type": "sleep", "jobs": jobs})
        assert client.post("/api/jobs/process/all/kids").status_code == 200
    calls: list[str] = []

    def openapi(route: Any) -> None:
        document = route.fetch().json()
        document["paths"]["/api/schedules"] = {"get": {}}
        document["paths"]["/api/jobs/{jobId}/retry"] = {"post": {}}
        document["paths"]["/api/jobs/{jobId}/cancel"] = {"post": {}}
        route.fulfill(json=document)

    def batch(route: Any) -> None:
        view = route.fetch().json()
        view["child"] = _CHILD if view["running"] else None
        route.fulfill(json=view)

    def job_action(route: Any) -> None:
        calls.append(route.request.url.split("/api/", 1)[1])
        route.fulfill(json={"jobId": "x", "state": "failed"})

    page.route("**/openapi.json", openapi)
    page.route("**/api/schedules", lambda route: route.fulfill(json={"schedules": [_SCHEDULE]}))
    page.route(re.compile(r".*/api/batches/kids$"), batch)
    page.route(re.compile(r".*/api/jobs/[0-9a-f]+/(retry|cancel)$"), job_action)
    page.goto(server.url + "/")
    expect(page.locator("#schedules tbody tr")).to_contain_text("nightly-embeddings")
    expect(page.locator("#schedules tbody tr")).to_contain_text("0 3 * * *")
    row = page.locator('#batches tr[data-batch="kids"]')
    expect(row).to_contain_text("pid 4242 · 50.0 MiB · CPU 1.5 s · 3 jobs", timeout=10_000)
    row.get_by_role("button", name="kids").click()
    first = page.locator("#jobs tbody tr").first
    cancel = first.get_by_role("button", name=re.compile(r"^cancel job "))
    expect(cancel).to_be_enabled()
    expect(first.get_by_role("button", name=re.compile(r"^retry job "))).to_be_disabled()
    screenshot(page, "batch-detail")
    cancel.click()
    for _ in range(100):  # the route's handler runs while Playwright waits
        if calls:
            break
        page.wait_for_timeout(100)
    assert len(calls) == 1 and re.fullmatch(r"jobs/[0-9a-f]+/cancel", calls[0]), calls
    page.locator('#batches tr[data-batch="kids"]').get_by_role("button", name="Cancel").click()
    expect(row).to_contain_text("idle", timeout=20_000)
