"""What the numbers were measured on, and with which versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any

from bench.model import Machine

__all__ = ["describe_machine", "versions"]

_PACKAGES = (
    "batchyard",
    "trio",
    "hypercorn",
    "starlette",
    "trio-websocket",
    "orjson",
    "celery",
    "kombu",
    "rq",
    "dramatiq",
    "arq",
    "huey",
    "saq",
    "redis",
    "matplotlib",
)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0.0
    return pages / 1024**3


def describe_machine() -> Machine:
    """This machine."""
    return Machine(
        cpu=_cpu(),
        cores=os.cpu_count() or 0,
        memory_gib=round(_memory_gib(), 1),
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
    )


def _redis_server(url: str) -> str | None:
    try:
        import redis

        info: Any = redis.Redis.from_url(url, socket_timeout=2).info("server")
    except Exception:  # any failure means: unknown
        return None
    return str(info.get("redis_version"))


def versions(redis_url: str, bullmq: str | None) -> dict[str, str]:
    """Installed versions of everything measured; absent ones are left out."""
    found = {}
    for package in _PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    if bullmq is not None:
        found["bullmq"] = bullmq
    node = shutil.which("node")
    if node is not None:
        answer = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
        found["node"] = answer.stdout.strip().removeprefix("v")
    server = _redis_server(redis_url)
    if server is not None:
        found["redis-server"] = server
    return found
