"""The error contract (DESIGN.md section 4): classes that old code already
catches, errno/phase/address/attempts/bytes_sent, and argument errors that
name the argument."""

from __future__ import annotations

import builtins
import errno
import math
import socket
import threading
import time

import pytest
from peers import closed_tcp_port, recv_all

import socketkit

MiB = 1 << 20


# --- the hierarchy ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (socketkit.TimeoutError, builtins.TimeoutError),
        (socketkit.TimeoutError, socket.timeout),
        (socketkit.ConnectionRefusedError, builtins.ConnectionRefusedError),
        (socketkit.ConnectionResetError, builtins.ConnectionResetError),
        (socketkit.ConnectionAbortedError, builtins.ConnectionAbortedError),
        (socketkit.BrokenPipeError, builtins.BrokenPipeError),
        (socketkit.ConnectionClosedError, builtins.ConnectionError),
        (socketkit.ResolveError, socket.gaierror),
        (socketkit.AddressInUseError, OSError),
        (socketkit.LimitExceededError, OSError),
    ],
)
def test_every_class_is_a_socketkit_error_and_its_builtin(cls, builtin):
    assert issubclass(cls, socketkit.Error)
    assert issubclass(cls, OSError)
    assert issubclass(cls, builtin)
    assert issubclass(socketkit.Error, OSError)


# --- timeouts -----------------------------------------------------------------------


def test_recv_timeout_is_caught_by_except_socket_timeout(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=0.2) as c:
        t0 = time.monotonic()
        try:
            c.recv()
        except TimeoutError as e:
            caught = e
        else:
            pytest.fail("recv did not time out")
        assert time.monotonic() - t0 < 5
    assert isinstance(caught, socketkit.TimeoutError)
    assert caught.errno == errno.ETIMEDOUT
    assert caught.phase == "recv"
    assert caught.address == ("127.0.0.1", echo_server.address[1])  # a (host, port) tuple (issue 17)
    assert "timed out" in str(caught)


def test_recv_exact_timeout_keeps_what_arrived_for_the_next_call(tcp_peer):
    release = threading.Event()

    def handler(conn: socket.socket) -> None:
        conn.sendall(b"abc")
        release.wait(10)
        conn.sendall(b"def")
        recv_all(conn)

    srv = tcp_peer(handler)
    with socketkit.TcpClient(srv.address, timeout=0.2) as c:
        with pytest.raises(socketkit.TimeoutError):
            c.recv_exact(6)
        release.set()
        c.settimeout(5)
        assert c.recv_exact(6) == b"abcdef"  # the timeout lost nothing


def test_connect_timeout(tcp_peer):
    # A listener with a full accept queue drops further SYNs, so connect hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = []
        try:
            for _ in range(4):
                f = socket.socket()
                fillers.append(f)
                f.setblocking(False)
                try:
                    f.connect(listener.getsockname())
                except BlockingIOError:
                    pass
            t0 = time.monotonic()
            try:
                socketkit.TcpClient(listener.getsockname(), timeout=0.3).close()
            except TimeoutError as e:
                assert isinstance(e, socketkit.TimeoutError)
                assert e.errno == errno.ETIMEDOUT
                assert e.phase == "connect"
            else:
                pytest.skip("the kernel accepted past the backlog; cannot make connect hang here")
            assert time.monotonic() - t0 < 5
        finally:
            for f in fillers:
                f.close()


# --- refused, resolve ---------------------------------------------------------------------


def test_refused_port():
    port = closed_tcp_port()
    with pytest.raises(ConnectionRefusedError) as ei:
        socketkit.TcpClient(("127.0.0.1", port), timeout=5)
    e = ei.value
    assert isinstance(e, socketkit.ConnectionRefusedError)
    assert isinstance(e, socketkit.Error)
    assert e.errno == errno.ECONNREFUSED
    assert e.phase == "connect"
    assert e.attempts == [(("127.0.0.1", port), errno.ECONNREFUSED, e.attempts[0][2])]
    assert "refused" in e.attempts[0][2].lower()
    assert f"127.0.0.1:{port}" in str(e)


def test_refused_lists_every_resolved_address():
    port = closed_tcp_port()
    expected = {ai[4][:2] for ai in socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)}
    with pytest.raises(ConnectionRefusedError) as ei:
        socketkit.TcpClient(f"localhost:{port}", timeout=5)
    e = ei.value
    assert {a[0] for a in e.attempts} == expected
    assert all(a[1] == errno.ECONNREFUSED for a in e.attempts)
    for host, p in expected:
        assert (f"[{host}]:{p}" if ":" in host else f"{host}:{p}") in str(e)


def test_unresolvable_name():
    # No timeout: a resolver that drops one query makes glibc retry after 5 s;
    # the answer must still be a gaierror, never a hang or another class.
    with pytest.raises(socket.gaierror) as ei:
        socketkit.TcpClient(("no-such-host.invalid", 80))
    e = ei.value
    assert isinstance(e, socketkit.ResolveError)
    assert isinstance(e, socketkit.Error)
    assert e.phase == "resolve"
    eai = {socket.EAI_NONAME, socket.EAI_AGAIN, socket.EAI_FAIL, getattr(socket, "EAI_NODATA", 0)}
    assert e.errno in eai
    assert "no-such-host.invalid" in str(e)
    with pytest.raises(socketkit.ResolveError):
        socketkit.UdpSocket().sendto(b"x", "no-such-host.invalid:53")  # no socket is made


def test_address_in_use():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(socketkit.AddressInUseError) as ei:
            socketkit.UdpSocket(taken.getsockname())
    assert ei.value.errno == errno.EADDRINUSE
    assert ei.value.phase == "bind"


# --- failed sendall says bytes_sent -----------------------------------------------------------


def test_failed_sendall_reports_bytes_sent(tcp_peer):
    taken = []

    def tiny_window_then_reset(conn: socket.socket) -> None:
        n = 0
        while n < 256 * 1024:  # read a little, then reset
            b = conn.recv(65536)
            if not b:
                break
            n += len(b)
        taken.append(n)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    def small_rcvbuf(listener: socket.socket) -> None:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    srv = tcp_peer(tiny_window_then_reset, listener_setup=small_rcvbuf)
    data = bytes(64 * MiB)
    with socketkit.TcpClient(srv.address, timeout=20, send_buffer=4096) as c:
        with pytest.raises(OSError) as ei:
            c.sendall(data)
    e = ei.value
    assert isinstance(e, socketkit.Error)
    assert isinstance(e, (ConnectionResetError, BrokenPipeError)), repr(e)
    assert e.phase == "send"
    assert isinstance(e.bytes_sent, int)
    assert taken and taken[0] <= e.bytes_sent < len(data)
    assert str(e.bytes_sent) in str(e)


def test_sendall_timeout_reports_bytes_sent(tcp_peer):
    release = threading.Event()

    def never_reads(conn: socket.socket) -> None:
        release.wait(10)

    srv = tcp_peer(never_reads)
    data = bytes(64 * MiB)
    try:
        with socketkit.TcpClient(srv.address, timeout=0.3) as c:
            t0 = time.monotonic()
            with pytest.raises(socket.timeout) as ei:
                c.sendall(data)
            assert time.monotonic() - t0 < 5
    finally:
        release.set()
    e = ei.value
    assert isinstance(e, socketkit.TimeoutError)
    assert e.phase == "send"
    assert 0 < e.bytes_sent < len(data)
    assert f"after {e.bytes_sent} bytes" in str(e)


# --- bad arguments name the argument ---------------------------------------------------------------


def _tcp(*a, **kw):
    return socketkit.TcpClient(*a, **kw)


ADDRESS_CASES = [
    (("127.0.0.1", 70000), ValueError, r"port must be 1-65535, got 70000"),
    (("127.0.0.1", -1), ValueError, r"port must be 1-65535, got -1"),
    ("127.0.0.1:70000", ValueError, r"70000"),
    ("127.0.0.1:-1", ValueError, r"port"),
    (("127.0.0.1", "abc"), TypeError, r"port must be an int, got str"),
    (("127.0.0.1", "80"), TypeError, r"port must be an int"),
    (("127.0.0.1", 80.0), TypeError, r"port must be an int"),
    (("127.0.0.1", True), TypeError, r"port must be an int"),
    ("127.0.0.1:abc", ValueError, r"abc"),
    ("127.0.0.1:", ValueError, r"address"),
    (("127.0.0.1", 0), ValueError, r"port must be 1-65535"),
    (("", 80), ValueError, r"host must not be empty"),
    (":80", ValueError, r"host must not be empty"),
    ("nocolon", ValueError, r"expected 'host:port'.*nocolon"),
    ("::1:80", ValueError, r"brackets"),
    ("[::1:80", ValueError, r"\]"),
    ("[not-v6]:80", ValueError, r"IPv6"),
    (("bad host", 80), ValueError, r"host"),
    ((5, 80), TypeError, r"host must be a str, got int"),
    (("127.0.0.1",), ValueError, r"\(host, port\)"),
    (("127.0.0.1", 80, 0, 0, 9), ValueError, r"\(host, port\)"),
    (123, TypeError, r"expected \(host, port\) or 'host:port', got int"),
    (None, TypeError, r"address"),
    (b"127.0.0.1:80", TypeError, r"address"),
]


@pytest.mark.parametrize(
    ("address", "exc", "message"), ADDRESS_CASES, ids=[repr(c[0]) for c in ADDRESS_CASES]
)
def test_bad_address_names_the_argument(address, exc, message):
    with pytest.raises(exc, match=message) as ei:
        socketkit.TcpClient(address, timeout=1)
    assert "address" in str(ei.value)


@pytest.mark.parametrize("address", ["127.0.0.1:70000", ("", 1), "nocolon", 42])
def test_bad_udp_addresses_name_the_argument(address):
    with pytest.raises((TypeError, ValueError), match="bind"):
        socketkit.UdpSocket(address)
    with pytest.raises((TypeError, ValueError), match="connect"):
        socketkit.UdpSocket(connect=address)
    with socketkit.UdpSocket(("127.0.0.1", 0)) as u:
        with pytest.raises((TypeError, ValueError), match="address"):
            u.sendto(b"x", address)
        with pytest.raises((TypeError, ValueError), match="address"):
            u.connect(address)


@pytest.mark.parametrize(
    ("timeout", "exc"),
    [(-1, ValueError), (-0.5, ValueError), (math.nan, ValueError), (math.inf, ValueError), ("1", TypeError)],
)
def test_bad_timeout_names_the_argument(timeout, exc):
    with pytest.raises(exc, match="timeout"):
        socketkit.TcpClient("127.0.0.1:9", timeout=timeout)
    with pytest.raises(exc, match="timeout"):
        socketkit.UdpSocket(("127.0.0.1", 0), timeout=timeout)


def test_bad_source_address():
    with pytest.raises(ValueError, match="source_address"):
        socketkit.TcpClient("127.0.0.1:9", timeout=1, source_address=("localhost", 0))
    with pytest.raises(ValueError, match="source_address"):
        socketkit.TcpClient("127.0.0.1:9", timeout=1, source_address=("::1", 0))


def test_bad_method_arguments_name_the_argument(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        cases = [
            (lambda: c.recv(-5), ValueError, r"bufsize must be non-negative, got -5"),
            (lambda: c.recv("5"), TypeError, r"bufsize|int"),
            (lambda: c.sendall("str"), TypeError, r"data must be bytes-like.*got str"),
            (lambda: c.send("str"), TypeError, r"data must be bytes-like"),
            (lambda: c.sendall(12), TypeError, r"data must be bytes-like.*int"),
            (lambda: c.sendall(None), TypeError, r"data"),
            (lambda: c.request("str"), TypeError, r"data"),
            (lambda: c.recv_exact(-1), ValueError, r"n must be non-negative"),
            (lambda: c.recv_exact("3"), TypeError, r"n must be an int"),
            (lambda: c.recv_exact(2.0), TypeError, r"n must be an int"),
            (lambda: c.recv_until(b""), ValueError, r"delimiter must not be empty"),
            (lambda: c.recv_until("\n"), TypeError, r"delimiter must be bytes, got str"),
            (lambda: c.recv_until(b"\n", -1), ValueError, r"max_size must be non-negative"),
            (lambda: c.recv_line(-1), ValueError, r"max_size"),
            (lambda: c.lines(max_size=-1), ValueError, r"max_size"),
            (lambda: c.request(b"x", max_size=-1), ValueError, r"max_size"),
            (lambda: c.settimeout(-1), ValueError, r"timeout"),
            (lambda: c.settimeout("x"), TypeError, r"timeout"),
            (lambda: c.sendfile(object()), TypeError, r"file"),
            (lambda: c.sendfile(0, count=-1), ValueError, r"count"),
        ]
        for call, exc, message in cases:
            with pytest.raises(exc, match=message):
                call()
        # The connection is still fine after all of that.
        assert c.request(b"alive\n") == b"alive\n"


def test_bad_udp_method_arguments_name_the_argument():
    with socketkit.UdpSocket(("127.0.0.1", 0), timeout=1) as u:
        with pytest.raises(ValueError, match="bufsize"):
            u.recvfrom(-1)
        with pytest.raises(ValueError, match="bufsize"):
            u.recv(-1)
        with pytest.raises(TypeError, match="data"):
            u.sendto("str", ("127.0.0.1", 9))
        with pytest.raises(ValueError, match="port"):
            u.sendto(b"x", ("127.0.0.1", 0))
        with pytest.raises(ValueError, match="timeout"):
            u.settimeout(-2)


# --- use after close ---------------------------------------------------------------------------------


def test_tcp_use_after_close_raises_ebadf(echo_server):
    c = socketkit.TcpClient(echo_server.address, timeout=5)
    c.close()
    calls = [
        lambda: c.recv(),
        lambda: c.recv_into(bytearray(4)),
        lambda: c.recv_exact(1),
        lambda: c.recv_line(),
        lambda: c.recv_until(b"x"),
        lambda: c.send(b"x"),
        lambda: c.sendall(b"x"),
        lambda: c.request(b"x\n"),
        lambda: next(c.lines()),
        lambda: c.shutdown("both"),
        lambda: c.options(),
        lambda: c.tcp_info(),
        lambda: c.detach(),
    ]
    for call in calls:
        with pytest.raises(OSError) as ei:
            call()
        assert ei.value.errno == errno.EBADF, ei.value
        assert isinstance(ei.value, socketkit.Error)
    assert c.local_address[0] == "127.0.0.1"  # addresses stay readable


def test_udp_use_after_close_raises_ebadf():
    u = socketkit.UdpSocket(("127.0.0.1", 0), timeout=1)
    u.close()
    for call in (
        lambda: u.recvfrom(),
        lambda: u.recvfrom_into(bytearray(4)),
        lambda: u.sendto(b"x", ("127.0.0.1", 9)),
        lambda: u.connect(("127.0.0.1", 9)),
        lambda: u.request(b"x", ("127.0.0.1", 9)),
        lambda: u.detach(),
    ):
        with pytest.raises(OSError) as ei:
            call()
        assert ei.value.errno == errno.EBADF, ei.value
