"""Secure defaults against a real server: no CORS header unless origins are
configured, a refused token never reaches the log, a body over the limit is
refused before it is read whole."""

from __future__ import annotations

import contextlib
import hmac
import logging
from pathlib import Path

import httpx
import pytest
import trio

from engine.config.settings import Settings
from engine.errors import ConfigError
from engine.server import middleware
from engine.testing import open_test_server

TOKEN = "the-real-token-0123456789"
PAGE = "https://dashboard.example.com"


async def test_no_cors_header_without_configured_origins(client: httpx.AsyncClient) -> None:
    with trio.fail_after(20):
        simple = await client.get("/api/status", headers={"Origin": PAGE})
        preflight = await client.options(
            "/api/batches",
            headers={"Origin": PAGE, "Access-Control-Request-Method": "POST"},
        )
    assert simple.status_code == 200
    for response in (simple, preflight):
        assert not [h for h in response.headers if h.startswith("access-control-")]
    assert preflight.status_code == 405


async def test_configured_origins_get_cors_and_others_do_not(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with (
            open_test_server(tmp_path, cors_origins=(PAGE,), token=TOKEN) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            preflight = await client.options(
                "/api/batches",
                headers={
                    "Origin": PAGE,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type",
                },
            )
            allowed = await client.get(
                "/api/status", headers={"Origin": PAGE, "Authorization": f"Bearer {TOKEN}"}
            )
            other = await client.get(
                "/api/status",
                headers={
                    "Origin": "https://elsewhere.example",
                    "Authorization": f"Bearer {TOKEN}",
                },
            )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == PAGE
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert allowed.headers["access-control-allow-origin"] == PAGE
    assert "access-control-allow-origin" not in other.headers


def test_cors_origins_come_from_the_environment_and_are_checked() -> None:
    loaded = Settings.load({"BATCHYARD_CORS_ORIGINS": f"{PAGE}, http://localhost:3000"})
    assert loaded.cors_origins == (PAGE, "http://localhost:3000")
    assert Settings.load({}).cors_origins == ()
    with pytest.raises(ConfigError, match="BATCHYARD_CORS_ORIGINS"):
        Settings.load({"BATCHYARD_CORS_ORIGINS": "example.com/path"})


async def test_a_refused_token_is_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    guesses = ["wrong-guess-abcdef", TOKEN[:-1], TOKEN + "x"]
    caplog.set_level(logging.DEBUG)
    with trio.fail_after(20):
        async with (
            open_test_server(tmp_path, token=TOKEN) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            answers = [
                await client.get("/api/status", headers={"Authorization": f"Bearer {guess}"})
                for guess in guesses
            ]
            answers.append(await client.get("/metrics", params={"token": guesses[0]}))
    assert [a.status_code for a in answers] == [401] * 4
    # The server's loggers (this test's own client logs its URLs).
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name.startswith("batchyard") for r in server)  # the log was captured
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in server)
    for secret in [*guesses, TOKEN]:
        assert secret not in logged
        assert all(secret not in a.text for a in answers)


async def test_a_streamed_body_over_the_limit_is_refused_before_it_is_read_whole(
    tmp_path: Path,
) -> None:
    limit, chunk = 64 * 1024, b"x" * 16 * 1024
    cap = 1000 * limit  # what the client would send if nobody stopped it
    sent_when_answered = -1
    with trio.fail_after(60):
        async with open_test_server(tmp_path, max_body_bytes=limit) as (_, url):
            host, port = url.removeprefix("http://").rsplit(":", 1)
            stream = await trio.open_tcp_stream(host, int(port))
            head = (
                "POST /api/batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            )
            sent = 0
            async with stream, trio.open_nursery() as nursery:

                async def send_body() -> None:
                    nonlocal sent
                    await stream.send_all(head.encode())
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        while sent < cap:
                            await stream.send_all(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            sent += len(chunk)

                nursery.start_soon(send_body)
                answer = await stream.receive_some(4096)
                sent_when_answered = sent
                while not answer.endswith(b"}}"):  # the rest of the error body
                    answer += await stream.receive_some(4096)
                nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body-too-large" in answer
    assert limit < sent_when_answered < cap // 10


async def test_tokens_are_compared_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(middleware.hmac, "compare_digest", compare_digest)
    with trio.fail_after(20):
        async with (
            open_test_server(tmp_path, token=TOKEN) as (_, url),
            httpx.AsyncClient(base_url=url) as client,
        ):
            wrong = await client.get("/api/status", headers={"Authorization": "Bearer nope"})
            right = await client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (wrong.status_code, right.status_code) == (401, 200)
    assert compared == [(b"nope", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]
