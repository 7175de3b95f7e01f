"""A network namespace joined to this host by a veth pair: an engine run in
it (``ip netns exec``) reaches this host at ``host_address`` only, and the
scenario cuts and restores that link. Needs root and ``ip``."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

import attrs

__all__ = ["Link", "network_namespace"]


@attrs.frozen
class Link:
    namespace: str
    host_side: str
    host_address: str

    @property
    def wrapper(self) -> tuple[str, ...]:
        """The command that runs a program inside the namespace."""
        return ("ip", "netns", "exec", self.namespace)

    def cut(self) -> None:
        _ip("link", "set", self.host_side, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_side, "up")


def _ip(*words: str) -> None:
    subprocess.run(["ip", *words], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def network_namespace() -> Iterator[Link | None]:
    """A namespace of this run on a private /30 subnet, removed on exit;
    ``None`` where this host cannot make one (not root, no ``ip``)."""
    tag = f"byf{os.getpid() % 100_000}"
    subnet = f"10.252.{os.getpid() % 250 + 1}"
    link = Link(namespace=tag, host_side=f"{tag}h", host_address=f"{subnet}.1")
    try:
        _ip("netns", "add", tag)
    except (OSError, subprocess.CalledProcessError):
        yield None
        return
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
            _ip("link", "del", link.host_side)
        _ip("netns", "del", tag)
