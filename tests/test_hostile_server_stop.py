"""stop() with a handler stuck past its timeout (issue 15 items 6 and 7):
the stuck connection closes (and a UDP server's port is free) when stop()
returns, and the handler's late reply is never sent."""

from __future__ import annotations

import socket
import threading
from contextlib import ExitStack

import pytest
from _server_util import connect, recv_line, wait_until

import socketkit


def read_to_eof(s: socket.socket, within: float = 5.0) -> bytes:
    """Everything the server sends until it closes; TimeoutError if it does
    not close within `within` s."""
    s.settimeout(within)
    data = bytearray()
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return bytes(data)


class Stuck:
    """A handler body that blocks on b"stuck" until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()

    def block(self) -> None:
        self.entered.set()
        self.release.wait(30)
        self.returned.set()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_stop_closes_a_connection_whose_on_message_is_stuck(
    tls: bool, request: pytest.FixtureRequest
) -> None:
    stuck = Stuck()

    def on_message(m: bytes) -> bytes:
        if m == b"stuck":
            stuck.block()
            return b"late"
        return m

    kw = {}
    ctx = None
    if tls:
        import ssl

        pki = request.getfixturevalue("tls_pki")
        kw["tls"] = socketkit.TlsConfig(cert_file=str(pki.valid.chain), key_file=str(pki.valid.key))
        ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    srv = socketkit.TcpServer(on_message=on_message, **kw)
    srv.start()
    try:
        with ExitStack() as stack:
            a, b = (connect(srv.address) for _ in range(2))
            if ctx:
                a, b = (ctx.wrap_socket(s, server_hostname="localhost") for s in (a, b))
            stack.enter_context(a)
            stack.enter_context(b)
            b.sendall(b"idle\n")
            assert recv_line(b) == b"idle\n"
            a.sendall(b"stuck\n")
            assert stuck.entered.wait(5)
            srv.stop(timeout=0.3)
            assert not srv.running and srv.fileno() == -1
            # The handler returns after stop(): its reply must not follow.
            stuck.release.set()
            assert stuck.returned.wait(5)
            assert read_to_eof(a) == b""
            assert read_to_eof(b) == b""
    finally:
        stuck.release.set()
        srv.stop()


def test_udp_stop_with_a_stuck_handler_frees_the_port_and_sends_no_late_reply() -> None:
    stuck = Stuck()
    replies = []

    def handler(data: bytes, peer: tuple[str, int]) -> bytes:
        stuck.block()
        replies.append(data)
        return b"late"

    srv = socketkit.UdpServer(handler=handler)
    srv.start()
    address = srv.address
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"x", address)
            assert stuck.entered.wait(5)
            srv.stop(timeout=0.2)
            assert not srv.running and srv.fileno() == -1
            # No SO_REUSEADDR here: binding succeeds only if the port is free.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
                again.bind(address)
            stuck.release.set()
            assert wait_until(lambda: replies == [b"x"])
            # Bounded negative check: the reply would follow at once.
            assert not wait_until(lambda: srv.stats["datagrams_out"] > 0, within=0.5)
            c.setblocking(False)
            with pytest.raises(BlockingIOError):
                c.recvfrom(100)
    finally:
        stuck.release.set()
        srv.stop()


def test_udp_stop_from_the_handler_still_sends_its_reply_and_frees_the_port() -> None:
    holder: dict[str, socketkit.UdpServer] = {}

    def handler(data: bytes, peer: tuple[str, int]) -> bytes:
        holder["srv"].stop()
        return b"bye"

    srv = socketkit.UdpServer(handler=handler)
    holder["srv"] = srv
    address = srv.address
    with srv, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(5)
        c.sendto(b"x", address)
        assert c.recvfrom(10)[0] == b"bye"

    def port_free() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
            try:
                again.bind(address)
            except OSError:
                return False
            return True

    assert wait_until(port_free)
