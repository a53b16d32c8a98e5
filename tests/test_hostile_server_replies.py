"""Replies at the edges (issue 15 items 8 and 11): a UDP reply too big for a
datagram is counted and logged, not dropped silently; a line without its
``\\n`` before EOF is a last message in both TCP modes, as asyncio's
``readline()`` returns it."""

from __future__ import annotations

import logging
import socket
import ssl
import threading

import pytest
from _server_util import connect, wait_until

import socketkit

MAX_IPV4_UDP = 65507


def test_udp_reply_over_the_largest_datagram_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def handler(data: bytes, peer: tuple[str, int]) -> bytes:
        return b"x" * int(data)

    with caplog.at_level(logging.ERROR, logger="socketkit"):
        with (
            socketkit.UdpServer(handler=handler) as srv,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c,
        ):
            c.settimeout(5)
            c.sendto(b"%d" % (MAX_IPV4_UDP + 1), srv.address)
            assert wait_until(lambda: srv.stats["handler_errors"] == 1)
            # The largest that fits still goes out, and the server goes on.
            c.sendto(b"%d" % MAX_IPV4_UDP, srv.address)
            assert len(c.recvfrom(1 << 17)[0]) == MAX_IPV4_UDP
            assert wait_until(lambda: srv.stats["datagrams_out"] == 1)
            assert srv.stats["handler_errors"] == 1
    recs = [r for r in caplog.records if r.name == "socketkit" and r.levelno == logging.ERROR]
    assert len(recs) == 1, caplog.text
    msg = recs[0].getMessage()
    assert f"{MAX_IPV4_UDP + 1}-byte reply" in msg and f"{MAX_IPV4_UDP} bytes over IPv4" in msg, msg
    assert "handler" in msg and "127.0.0.1" in msg


def half_close(s: socket.socket) -> None:
    """Shut down the sending side of `s`, a TLS socket's included (its own
    shutdown() would drop the TLS layer; this keeps it for the reply)."""
    socket.socket.shutdown(s, socket.SHUT_WR)


def read_to_eof(s: socket.socket) -> bytes:
    s.settimeout(5)
    data = bytearray()
    while chunk := s.recv(65536):
        data += chunk
    return bytes(data)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_on_message_answers_an_unterminated_last_line(tls: bool, request: pytest.FixtureRequest) -> None:
    seen: list[bytes] = []

    def on_message(m: bytes) -> bytes:
        seen.append(m)
        return m.upper()

    kw = {}
    if tls:
        pki = request.getfixturevalue("tls_pki")
        kw["tls"] = socketkit.TlsConfig(cert_file=str(pki.valid.chain), key_file=str(pki.valid.key))
    with socketkit.TcpServer(on_message=on_message, **kw) as srv:
        s = connect(srv.address)
        if tls:
            ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
            s = ctx.wrap_socket(s, server_hostname="localhost")
        with s:
            s.sendall(b"one\r\ntwo\nlast")
            half_close(s)
            assert read_to_eof(s) == b"ONE\r\nTWO\nLAST\n"
    assert seen == [b"one\r", b"two", b"last"]


def test_on_message_with_length_framing_ignores_an_unfinished_frame_at_eof() -> None:
    seen: list[bytes] = []

    def on_message(m: bytes) -> bytes:
        seen.append(m)
        return m

    with socketkit.TcpServer(on_message=on_message, framing="length") as srv, connect(srv.address) as s:
        s.sendall(b"\0\0\0\2ok\0\0\0\5abc")
        s.shutdown(socket.SHUT_WR)
        assert read_to_eof(s) == b"\0\0\0\2ok"
    assert seen == [b"ok"]


def test_handler_mode_lines_give_the_unterminated_last_line_too() -> None:
    seen: list[bytes] = []
    done = threading.Event()

    def handler(conn: socketkit.TcpClient) -> None:
        for line in conn.lines():
            seen.append(line)
            conn.sendall(line.upper())
        done.set()

    with socketkit.TcpServer(handler=handler) as srv, connect(srv.address) as s:
        s.sendall(b"one\ntwo\nlast")
        s.shutdown(socket.SHUT_WR)
        assert read_to_eof(s) == b"ONE\nTWO\nLAST"
        assert done.wait(5)
    assert seen == [b"one\n", b"two\n", b"last"]
