"""UdpServer against stdlib UDP clients."""

from __future__ import annotations

import logging
import socket

import pytest
from _server_util import run_clients, wait_until

import socketkit

CLIENTS = 50
ROUNDS = 20


def udp_client(timeout: float = 5.0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    return s


def ask(s: socket.socket, data: bytes, address: tuple[str, int], tries: int = 5) -> bytes:
    """Send and wait for the reply; resend on silence (UDP may drop)."""
    for _ in range(tries):
        s.sendto(data, address)
        try:
            reply, _ = s.recvfrom(65536)
            return reply
        except TimeoutError:
            continue
    raise AssertionError(f"no reply to {data!r}")


def test_handler_serves_50_concurrent_clients() -> None:
    def handler(data: bytes, peer: tuple[str, int]) -> bytes:
        return data.upper() + b" " + str(peer[1]).encode()

    with socketkit.UdpServer(handler=handler) as srv:

        def client(i: int) -> None:
            with udp_client() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
                for r in range(ROUNDS):
                    assert ask(s, b"hi %d %d" % (i, r), srv.address) == b"HI %d %d %d" % (i, r, port)

        run_clients(CLIENTS, client)
        st = srv.stats
    assert st["datagrams_in"] >= CLIENTS * ROUNDS
    assert st["handler_errors"] == 0


def test_echo_serves_50_concurrent_clients() -> None:
    with socketkit.UdpServer.echo() as srv:
        assert srv.running

        def client(i: int) -> None:
            with udp_client() as s:
                for r in range(ROUNDS):
                    msg = bytes([i, r]) * 100
                    assert ask(s, msg, srv.address) == msg

        run_clients(CLIENTS, client)


def test_none_reply_sends_nothing_and_discard_server_counts() -> None:
    with socketkit.UdpServer() as srv, udp_client(timeout=0.2) as s:
        s.sendto(b"into the void", srv.address)
        assert wait_until(lambda: srv.stats["datagrams_in"] == 1)
        with pytest.raises(TimeoutError):
            s.recvfrom(100)
        assert srv.stats["bytes_in"] == len(b"into the void")
        assert srv.stats["datagrams_out"] == 0


def test_handler_exception_logged_and_server_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def handler(data: bytes, peer: tuple[str, int]) -> bytes | None:
        if data == b"boom":
            raise KeyError("no such thing")
        return data

    with caplog.at_level(logging.ERROR, logger="socketkit"):
        with socketkit.UdpServer(handler=handler) as srv, udp_client() as s:
            s.sendto(b"boom", srv.address)
            assert wait_until(lambda: srv.stats["handler_errors"] == 1)
            assert ask(s, b"next", srv.address) == b"next"
    recs = [r for r in caplog.records if r.name == "socketkit" and r.exc_info]
    assert len(recs) == 1 and isinstance(recs[0].exc_info[1], KeyError)
    assert "Traceback" in caplog.text


def test_lifecycle_and_arguments() -> None:
    srv = socketkit.UdpServer(handler=lambda d, p: d)
    assert srv.address[0] == "127.0.0.1" and srv.address[1] > 0
    assert not srv.running
    srv.start()
    srv.start()  # idempotent
    assert "running" in repr(srv)
    srv.stop()
    srv.stop()
    assert srv.fileno() == -1 and not srv.running
    with pytest.raises(socketkit.Error):
        srv.start()
    with pytest.raises(TypeError, match="handler must be callable"):
        socketkit.UdpServer(handler=b"x")
    with pytest.raises(ValueError, match="nodelay"):
        socketkit.UdpServer(nodelay=True)


def test_stop_from_the_handler() -> None:
    holder: dict[str, socketkit.UdpServer] = {}

    def handler(data: bytes, peer: tuple[str, int]) -> bytes:
        holder["srv"].stop()
        return b"bye"

    srv = socketkit.UdpServer(handler=handler)
    holder["srv"] = srv
    with srv, udp_client() as s:
        s.sendto(b"x", srv.address)
        assert s.recvfrom(10)[0] == b"bye"
        assert wait_until(lambda: not srv.running)
