"""Fixtures: stdlib TCP and UDP peers (see peers.py).

Every server a test starts is stopped at teardown, and a handler that raised
fails the test at teardown, so a broken peer can never make a test pass.
Servers listen on 127.0.0.1 (or ::1) only.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator

import pytest
from peers import TcpPeer, UdpPeer, echo_handler

# The TLS PKI and real daemons (nginx, redis TLS, postfix, dovecot, postgres...).
pytest_plugins = ["tls_fixtures"]

# A run started in the background by a script (`cmd &`) inherits SIGINT
# ignored, and so would every child the Ctrl-C tests start: Python installs
# its KeyboardInterrupt handler only where SIGINT is not ignored at start,
# and exec keeps an ignored signal ignored but resets a handled one. Seen:
# 33 Ctrl-C and CLI tests failed under `(nohup bash -c '...' &)`.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def tcp_peer() -> Iterator[Callable[..., TcpPeer]]:
    """Factory: `tcp_peer(handler, host="127.0.0.1")` starts a server; all
    are stopped at teardown and any handler error fails the test."""
    peers: list[TcpPeer] = []

    def start(handler: Callable[[socket.socket], None], host: str = "127.0.0.1", **kw) -> TcpPeer:
        p = TcpPeer(handler, host, **kw)
        peers.append(p)
        return p

    yield start
    for p in peers:
        p.stop()
    for p in peers:
        if p.errors:
            raise p.errors[0]


@pytest.fixture
def echo_server(tcp_peer) -> TcpPeer:
    """A stdlib echo server on 127.0.0.1, port chosen by the kernel."""
    return tcp_peer(echo_handler)


@pytest.fixture
def udp_peer() -> Iterator[Callable[..., UdpPeer]]:
    """Factory: `udp_peer(handler, host="127.0.0.1")`; stopped at teardown."""
    peers: list[UdpPeer] = []

    def start(handler, host: str = "127.0.0.1") -> UdpPeer:
        p = UdpPeer(handler, host)
        peers.append(p)
        return p

    yield start
    for p in peers:
        p.stop()
    for p in peers:
        if p.errors:
            raise p.errors[0]


@pytest.fixture
def udp_echo(udp_peer) -> UdpPeer:
    """A stdlib UDP echo peer on 127.0.0.1."""
    return udp_peer(lambda data, addr, sock: sock.sendto(data, addr))
