"""Fault tests for every TcpServer mode, plain and TLS (issue 15): a peer
that resets mid-message, half-closes, trickles (slowloris against
``idle_timeout``) or walks away. Each time the server keeps serving other
clients, the connection is accounted for (``stats["active"]`` back to 0),
and after ``stop()`` the process has the fds and threads it had before.
Loopback only; every wait is bounded."""

from __future__ import annotations

import logging
import socket
import ssl
import time
import traceback

import pytest
from _fault_util import (
    KIND_IDS,
    KINDS,
    Kind,
    back_to_baseline,
    client_ctx,
    open_client,
    read_to_eof,
    reset,
    server_tls,
    tls_half_close,
)
from _server_util import closed_by_peer, recv_exactly, wait_until

import socketkit

pytestmark = pytest.mark.timeout(60)

LOCAL_ADDR = ("127.0.0.1", 0)


@pytest.fixture
def pki(request, tls_pki):
    return tls_pki


def start(kind: Kind, pki, **kw: object) -> socketkit.TcpServer:
    s = kind.make(tls=server_tls(pki) if kind.tls else None, **kw)
    s.start()
    return s


def round_trip(kind: Kind, srv: socketkit.TcpServer, pki, n: int = 3) -> None:
    """A well-behaved client gets its replies."""
    with open_client(kind, srv.address, pki) as c:
        for i in range(n):
            req = kind.request(i)
            c.sendall(req)
            assert recv_exactly(c, len(req)) == req


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_reset_mid_message(kind: Kind, pki) -> None:
    with back_to_baseline(kind.name):
        srv = start(kind, pki)
        try:
            for _ in range(5):
                c = open_client(kind, srv.address, pki)
                req = kind.request(1)
                c.sendall(req)
                assert recv_exactly(c, len(req)) == req
                c.sendall(kind.partial())
                reset(c)
            round_trip(kind, srv, pki)
            assert wait_until(lambda: srv.stats["active"] == 0, within=10)
            # A reset is the peer's doing, not a handler error.
            assert srv.stats["handler_errors"] == 0
        finally:
            srv.stop()


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_half_close_gets_every_reply_then_eof(kind: Kind, pki) -> None:
    reqs = [kind.request(i) for i in range(20)]
    data = b"".join(reqs)
    with back_to_baseline(kind.name):
        srv = start(kind, pki)
        try:
            if kind.tls:
                got = tls_half_close(srv.address, client_ctx(pki), data)
            else:
                with socket.create_connection(srv.address, timeout=10) as c:
                    c.sendall(data)
                    c.shutdown(socket.SHUT_WR)
                    got = read_to_eof(c)  # the server closes once it has answered
            assert got == data
            round_trip(kind, srv, pki)
            assert wait_until(lambda: srv.stats["active"] == 0, within=10)
            assert srv.stats["handler_errors"] == 0
        finally:
            srv.stop()


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_slowloris_is_cut_at_idle_timeout(kind: Kind, pki) -> None:
    idle = 0.5
    with back_to_baseline(kind.name):
        srv = start(kind, pki, idle_timeout=idle)
        lorises: list[socket.socket] = []
        try:
            for i in range(12):
                c = open_client(kind, srv.address, pki)
                lorises.append(c)
                if i % 2:
                    c.sendall(kind.partial())  # a message begun, never finished
            started = time.monotonic()
            # Others are served while the slow ones hold their connections.
            round_trip(kind, srv, pki)
            for c in lorises:
                assert closed_by_peer(c, within=idle + 10), f"{kind.name}: slow client not cut"
            assert time.monotonic() - started >= idle * 0.9
            assert wait_until(lambda: srv.stats["active"] == 0, within=10)
        finally:
            for c in lorises:
                c.close()
            srv.stop()


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_abandoned_connections(kind: Kind, pki) -> None:
    with back_to_baseline(kind.name):
        srv = start(kind, pki)
        try:
            held = []
            for i in range(150):
                c = socket.create_connection(srv.address, timeout=10)
                if i % 3 == 0:
                    c.sendall(kind.partial())  # plaintext to a TLS server: garbage
                held.append(c)
            # A TLS client that handshakes, sends half a message and leaves.
            if kind.tls:
                t = open_client(kind, srv.address, pki)
                t.sendall(kind.partial())
                held.append(t)
            round_trip(kind, srv, pki)
            for i, c in enumerate(held):
                if i % 2:
                    reset(c)
                else:
                    c.close()
            assert wait_until(lambda: srv.stats["active"] == 0, within=15)
            round_trip(kind, srv, pki)
            assert srv.stats["handler_errors"] == 0
        finally:
            srv.stop()


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_stop_with_faulty_clients_attached(kind: Kind, pki) -> None:
    """stop() while clients are mid-message, silent, or mid-handshake:
    every one is closed and the process is back at its fd/thread count."""
    with back_to_baseline(kind.name):
        srv = start(kind, pki)
        clients: list[socket.socket] = []
        try:
            round_trip(kind, srv, pki)
            for i in range(10):
                c = socket.create_connection(srv.address, timeout=10)
                if i % 2:
                    c.sendall(kind.partial())
                clients.append(c)
            if kind.tls:
                t = open_client(kind, srv.address, pki)
                t.sendall(kind.partial())
                clients.append(t)
            assert wait_until(lambda: srv.stats["accepted"] >= len(clients) + 1, within=10)
        finally:
            srv.stop()
        try:
            for c in clients:
                assert closed_by_peer(c, within=5)
        finally:
            for c in clients:
                c.close()


def test_tls_plaintext_and_garbage_do_not_stop_service(tls_pki) -> None:
    """Bytes that are not TLS (an HTTP request, random bytes) to a TLS server
    cost that connection only."""
    kind = next(k for k in KINDS if k.name == "tls-on_message-line")
    with back_to_baseline(kind.name):
        srv = start(kind, tls_pki)
        try:
            for junk in (
                b"GET / HTTP/1.0\r\n\r\n",
                bytes(range(256)) * 4,
                b"\x16\x03\x01\xff\xff" + b"\0" * 64,
            ):
                with socket.create_connection(srv.address, timeout=10) as c:
                    c.sendall(junk)
                    assert closed_by_peer(c, within=10)
            round_trip(kind, srv, tls_pki)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                bad = ssl.create_default_context()  # does not trust the test CA
                with bad.wrap_socket(
                    socket.create_connection(srv.address, timeout=10), server_hostname="localhost"
                ):
                    pass
            round_trip(kind, srv, tls_pki)
            assert wait_until(lambda: srv.stats["active"] == 0, within=10)
        finally:
            srv.stop()


SECRET = b"SECRET-PAYLOAD-7f3a"


def test_nothing_logs_payloads(caplog: pytest.LogCaptureFixture, tls_pki) -> None:
    """Every server mode at DEBUG, through replies, handler errors, a wrong
    reply type, oversized messages and resets: the socketkit logger never
    shows a byte of what peers sent or handlers returned."""

    def raising(m: bytes) -> bytes:
        if m.startswith(b"raise"):
            raise ValueError("handler refused a message")
        return m.decode()  # type: ignore[return-value]  # a str: wrong type, logged

    def handler(conn: socketkit.TcpClient) -> None:
        for line in conn.lines():
            if line.startswith(b"raise"):
                raise ValueError("handler refused a line")
            conn.sendall(line)

    def udp(data: bytes, peer: tuple[str, int]) -> bytes:
        if data.startswith(b"raise"):
            raise ValueError("handler refused a datagram")
        return data.decode()  # type: ignore[return-value]

    tls = server_tls(tls_pki)
    servers = [
        socketkit.TcpServer(LOCAL_ADDR, handler, max_connections=4),
        socketkit.TcpServer(LOCAL_ADDR, on_message=raising, framing="line", max_message=64),
        socketkit.TcpServer(LOCAL_ADDR, on_message=raising, framing="length", max_message=64),
        socketkit.TcpServer.echo(LOCAL_ADDR),
        socketkit.TcpServer(LOCAL_ADDR, on_message=raising, tls=tls, max_message=64),
    ]
    with caplog.at_level(logging.DEBUG, logger="socketkit"):
        for srv in servers:
            srv.start()
            try:
                for msg in (SECRET + b"\n", b"raise " + SECRET + b"\n", SECRET * 10 + b"\n"):
                    c = socket.create_connection(srv.address, timeout=10)
                    if srv is servers[4]:
                        c = client_ctx(tls_pki).wrap_socket(c, server_hostname="localhost")
                    with c:
                        c.sendall(msg if srv is not servers[2] else len(msg).to_bytes(4, "big") + msg)
                        closed_by_peer(c, within=0.5)
                c = socket.create_connection(srv.address, timeout=10)
                c.sendall(SECRET)
                reset(c)
            finally:
                srv.stop()
        usrv = socketkit.UdpServer(LOCAL_ADDR, udp)
        usrv.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                for msg in (SECRET, b"raise " + SECRET):
                    u.sendto(msg, usrv.address)
            assert wait_until(lambda: usrv.stats["handler_errors"] == 2, within=10)
        finally:
            usrv.stop()
    assert caplog.records, "nothing was logged: the test exercised no error path"
    assert SECRET.decode() not in caplog.text
    for r in caplog.records:
        assert SECRET.decode() not in r.getMessage()
        if r.exc_info:
            assert SECRET.decode() not in "".join(traceback.format_exception(*r.exc_info))


def test_accept_mode_reset_and_stop_back_to_baseline() -> None:
    """The fifth kind, accept() for your own loop: a client that resets
    before and after being accepted, then stop()."""
    with back_to_baseline("accept"):
        srv = socketkit.TcpServer(LOCAL_ADDR)
        srv.start()
        try:
            early = socket.create_connection(srv.address, timeout=10)
            reset(early)  # reset while still in the accept queue
            c = socket.create_connection(srv.address, timeout=10)
            conn, peer = srv.accept(timeout=10)
            if peer != c.getsockname():  # the reset one may have been queued first
                conn.close()
                conn, peer = srv.accept(timeout=10)
            try:
                assert peer == c.getsockname()
                c.sendall(b"half a line")
                reset(c)
                with pytest.raises((ConnectionError, socketkit.Error)):
                    conn.recv_line()
            finally:
                conn.close()
        finally:
            srv.stop()
