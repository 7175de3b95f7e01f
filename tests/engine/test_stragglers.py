"""Shutting down the connections that would outlive the server, on real
sockets: only those accepted on the server's own address."""

from __future__ import annotations

import socket

import pytest
import trio

from engine.server.stragglers import shut_down_connections


async def _listener(host: str, port: int = 0) -> trio.socket.SocketType:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    await sock.bind((host, port))
    sock.listen()
    return sock


async def _connect(
    listener: trio.socket.SocketType, host: str | None = None
) -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    """A connected client socket and the socket ``listener`` accepted for it."""
    listen_host, port = listener.getsockname()
    client = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    await client.connect((host or listen_host, port))
    accepted, _ = await listener.accept()
    return client, accepted


async def _still_open(client: trio.socket.SocketType, accepted: trio.socket.SocketType) -> bool:
    await accepted.send(b"a")
    await client.send(b"c")
    return await client.recv(1) == b"a" and await accepted.recv(1) == b"c"


async def test_only_a_connection_accepted_on_the_servers_address_is_shut_down() -> None:
    with trio.fail_after(10):
        server = await _listener("127.0.0.1")
        other_port = await _listener("127.0.0.1")
        client, accepted = await _connect(server)
        other_client, other_accepted = await _connect(other_port)
        with server, other_port, client, accepted, other_client, other_accepted:
            # Four connected sockets; only ``accepted`` has the server's
            # address as its own (``client`` has it as its peer).
            assert shut_down_connections([server.getsockname()]) == 1
            assert await client.recv(1) == b""  # the server's end is shut
            assert await _still_open(other_client, other_accepted)
            # The listener is untouched: it still accepts.
            late_client, late_accepted = await _connect(server)
            with late_client, late_accepted:
                assert await _still_open(late_client, late_accepted)


async def test_a_connection_on_another_address_of_the_same_port_is_left_alone() -> None:
    with trio.fail_after(10):
        server = await _listener("127.0.0.1")
        port = server.getsockname()[1]
        try:
            neighbour = await _listener("127.0.0.2", port)
        except OSError:
            server.close()
            pytest.skip("127.0.0.2 is not a local address here")
        client, accepted = await _connect(neighbour)
        with server, neighbour, client, accepted:
            assert shut_down_connections([("127.0.0.1", port)]) == 0
            assert await _still_open(client, accepted)


async def test_a_server_on_every_address_owns_its_port_on_each() -> None:
    with trio.fail_after(10):
        server = await _listener("0.0.0.0")
        port = server.getsockname()[1]
        client, accepted = await _connect(server, "127.0.0.1")
        with server, client, accepted:
            assert shut_down_connections([("0.0.0.0", port)]) == 1
            assert await client.recv(1) == b""
