"""A network namespace for a test (``faults.netns``): an engine in it
reaches this host through a veth pair, and the test cuts and restores the
link. Skipped where this host cannot make one (not root, no ``ip``), except
under ``CI=true``, where that fails the test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from faults import netns
from faults.netns import Link

__all__ = ["Link", "network_namespace"]


@contextlib.contextmanager
def network_namespace() -> Iterator[Link]:
    """A network namespace of this test, removed on exit."""
    with netns.network_namespace() as link:
        if link is None:
            message = "this host cannot make a network namespace (root and `ip` are needed)"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        yield link
