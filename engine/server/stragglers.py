"""Connections that would outlive the server: found through ``/dev/fd``, shut down.

Design notes
------------
hypercorn writes to a socket with its cancel shield up, so a handler whose
client stopped reading (a suspended ``watch``, a stalled proxy) blocks in
``send`` until the client reads, and no cancellation frees it; hypercorn
closes a connection's socket only after its handlers have ended. Left
alone, one such client would hold the whole process open. So when hypercorn
has not finished shortly after its grace, ``serve`` calls
``shut_down_connections``: every connected socket still open on the
server's local address is shut down (``SHUT_RDWR``), the stuck write fails
at once and everything unwinds.

A socket is the server's when its local address is one the server listens
on: the same port and the same host, or any host of that port when the
server listens on every address (``0.0.0.0``, ``::``). Listening sockets
are never touched (they are not connected), nor are the connections of
anything else in the process: a client's sockets, another server's, a
store's.

The descriptors are found through ``/dev/fd`` (Linux, macOS, the BSDs);
elsewhere nothing is found, and the wait is as long as the client's.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable

__all__ = ["shut_down_connections"]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip(host: str) -> _IPAddress:
    # A link-local IPv6 address may carry a scope ("fe80::1%eth0"); an IPv4
    # peer of a dual-stack socket shows as "::ffff:a.b.c.d".
    address = ipaddress.ip_address(host.strip("[]").partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _served_on(sock: socket.socket, listening: Iterable[tuple[_IPAddress, int]]) -> bool:
    """Whether ``sock`` is a connection accepted on one of the ``listening`` addresses."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return False
    try:
        sock.getpeername()
    except OSError:  # not connected: a listener, or already shut down
        return False
    local = sock.getsockname()
    host, port = _ip(local[0]), local[1]
    return any(
        port == listen_port and (listen_host.is_unspecified or host == listen_host)
        for listen_host, listen_port in listening
    )


def shut_down_connections(listening: Iterable[tuple[str, int]]) -> int:
    """``SHUT_RDWR`` every connected TCP socket of this process accepted on
    one of the ``listening`` addresses.

    Args:
        listening: each address the server listens on, as ``(host, port)``
            with ``host`` an IP address (``[::1]`` or ``::1``).

    Returns:
        How many connections were shut down (none where ``/dev/fd`` does not
        list descriptors).
    """
    addresses = [(_ip(host), port) for host, port in listening]
    try:
        descriptors = [int(name) for name in os.listdir("/dev/fd")]
    except OSError:
        return 0
    count = 0
    for descriptor in descriptors:
        try:
            duplicate = os.dup(descriptor)
        except OSError:  # closed since it was listed
            continue
        try:
            sock = socket.socket(fileno=duplicate)
        except OSError:  # not a socket
            os.close(duplicate)
            continue
        with sock:
            if _served_on(sock, addresses):
                sock.shutdown(socket.SHUT_RDWR)
                count += 1
    return count
