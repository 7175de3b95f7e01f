"""A network namespace for a test: an engine in it reaches this host
through a veth pair, and the test cuts and restores the link."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

import attrs
import pytest

__all__ = ["Link", "network_namespace"]


@attrs.frozen
class Link:
    """A network namespace joined to this host's by a veth pair."""

    namespace: str
    host_side: str
    host_address: str

    def cut(self) -> None:
        _ip("link", "set", self.host_side, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_side, "up")


def _ip(*words: str) -> None:
    subprocess.run(["ip", *words], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def network_namespace() -> Iterator[Link]:
    """A network namespace of this test, joined by a veth pair to a private
    subnet of this host; removed on exit. Skipped where this host cannot
    make one (not root, no ``ip``), except under ``CI=true``."""
    tag = f"by{os.getpid() % 100_000}"
    subnet = f"10.251.{os.getpid() % 250 + 1}"
    link = Link(namespace=tag, host_side=f"{tag}h", host_address=f"{subnet}.1")
    try:
        _ip("netns", "add", tag)
    except (OSError, subprocess.CalledProcessError) as exc:
        message = f"this host cannot make a network namespace: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        _ip("link", "add", link.host_side, "type", "veth", "peer", "name", f"{tag}n")
        _ip("link", "set", f"{tag}n", "netns", tag)
        _ip("addr", "add", f"{link.host_address}/30", "dev", link.host_side)
        _ip("link", "set", link.host_side, "up")
        inside = ("netns", "exec", tag, "ip")
        _ip(*inside, "addr", "add", f"{subnet}.2/30", "dev", f"{tag}n")
        _ip(*inside, "link", "set", f"{tag}n", "up")
        _ip(*inside, "link", "set", "lo", "up")
        yield link
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", link.host_side)  # both ends go
        _ip("netns", "del", tag)
