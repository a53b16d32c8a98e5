"""TcpServer lifecycle, arguments and on_message details against stdlib clients
(split from test_server_tcp.py to keep each file short)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from _server_util import (
    closed_by_peer,
    connect,
    echo_lines,
    frame,
    recv_exactly,
    recv_frame,
    recv_line,
    wait_until,
)

import socketkit

# --- lifecycle ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["handler", "on_message", "echo"])
def test_start_then_immediate_connect_20_times(mode: str) -> None:
    for i in range(20):
        if mode == "echo":
            srv = socketkit.TcpServer.echo()
        elif mode == "handler":
            srv = socketkit.TcpServer(handler=echo_lines)
            srv.start()
        else:
            srv = socketkit.TcpServer(on_message=lambda m: m)
            srv.start()
        try:
            with connect(srv.address) as s:
                s.sendall(b"%d\n" % i)
                assert recv_line(s) == b"%d\n" % i
        finally:
            srv.stop()


@pytest.mark.parametrize("mode", ["accept", "handler", "on_message", "echo"])
def test_port_refuses_after_stop(mode: str) -> None:
    if mode == "accept":
        srv = socketkit.TcpServer()
    elif mode == "handler":
        srv = socketkit.TcpServer(handler=echo_lines)
    elif mode == "on_message":
        srv = socketkit.TcpServer(on_message=lambda m: m)
    else:
        srv = socketkit.TcpServer.echo()
    with srv:
        address = srv.address
        with connect(address):
            pass
    assert not srv.running and srv.fileno() == -1
    with pytest.raises(ConnectionRefusedError):
        connect(address, timeout=2).close()
    srv.stop()  # idempotent
    with pytest.raises(socketkit.Error):
        srv.start()


def test_stop_closes_connections_held_by_blocked_handlers() -> None:
    entered = threading.Event()

    def handler(conn: socketkit.TcpClient) -> None:
        entered.set()
        conn.recv(10)  # blocks until stop closes the connection

    srv = socketkit.TcpServer(handler=handler)
    srv.start()
    with connect(srv.address) as s:
        assert entered.wait(5)
        srv.stop(timeout=0.2)
        assert closed_by_peer(s)
    assert srv.stats["active"] == 0 and srv.stats["handler_errors"] == 0


def test_stop_lets_a_running_handler_finish() -> None:
    started = threading.Event()
    release = threading.Event()

    def on_message(m: bytes) -> bytes:
        started.set()
        release.wait(5)
        return b"done"

    srv = socketkit.TcpServer(on_message=on_message)
    srv.start()
    with connect(srv.address) as s:
        s.sendall(b"work\n")
        assert started.wait(5)
        threading.Timer(0.2, release.set).start()
        srv.stop(timeout=5)
        assert recv_line(s) == b"done\n"


def test_accept_timeout_and_stop_wakes_accept() -> None:
    srv = socketkit.TcpServer()
    try:
        with pytest.raises(TimeoutError):
            srv.accept(timeout=0.05)
        errors: list[BaseException] = []

        def blocked() -> None:
            try:
                srv.accept()
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=blocked)
        t.start()
        srv.stop()
        t.join(2)
        assert not t.is_alive()
        assert isinstance(errors[0], socketkit.Error)
    finally:
        srv.stop()


def test_address_default_and_repr() -> None:
    with socketkit.TcpServer(on_message=lambda m: m) as srv:
        host, port = srv.address
        assert host == "127.0.0.1" and port > 0
        assert "on_message" in repr(srv) and "running" in repr(srv)
        assert set(srv.stats) == {"accepted", "active", "rejected", "handler_errors", "bytes_in", "bytes_out"}


def test_ipv6_and_string_address() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv = socketkit.TcpServer.echo("[::1]:0")
    except OSError:
        pytest.skip("::1 unavailable")
    with srv:
        assert srv.address[0] == "::1"
        with socket.create_connection(srv.address, timeout=5) as s:
            s.sendall(b"v6")
            assert recv_exactly(s, 2) == b"v6"


def test_options_are_applied() -> None:
    with socketkit.TcpServer(
        handler=lambda c: c.sendall(repr(c.options()["nodelay"]).encode()), nodelay=True
    ) as srv:
        with connect(srv.address) as s:
            assert s.recv(100) == b"True"


@pytest.mark.parametrize("nodelay", [None, True, False])
def test_nodelay_is_on_by_default_in_every_mode(nodelay: bool | None) -> None:
    """Every accepted connection has Nagle off unless nodelay=False (issue 16):
    accepted sockets inherit TCP_NODELAY from the listener."""
    kw = {} if nodelay is None else {"nodelay": nodelay}
    want = 1 if nodelay in (None, True) else 0

    def seen(sock: socket.socket) -> int:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    with socketkit.TcpServer(**kw) as srv:  # accept mode
        with connect(srv.address):
            conn, _ = srv.accept(timeout=5)
            with conn:
                assert conn.options()["nodelay"] is bool(want)
    answers = socketkit.TcpServer(handler=lambda c: c.sendall(repr(c.options()["nodelay"]).encode()), **kw)
    with answers, connect(answers.address) as s:
        assert s.recv(100) == repr(bool(want)).encode()
    # The listening socket holds it for the event-loop modes too.
    for srv in (socketkit.TcpServer(on_message=lambda m: m, **kw), socketkit.TcpServer.echo(**kw)):
        with srv, socket.socket(fileno=os.dup(srv.fileno())) as view:
            assert seen(view) == want


def test_address_in_use() -> None:
    with socketkit.TcpServer(reuse_address=False) as a:
        with pytest.raises(socketkit.AddressInUseError):
            socketkit.TcpServer(a.address, reuse_address=False)


# --- arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "needle"),
    [
        ({"handler": 5}, TypeError, "handler must be callable"),
        ({"on_message": "x"}, TypeError, "on_message must be callable"),
        ({"handler": print, "on_message": print}, ValueError, "not both"),
        ({"on_message": print, "framing": "json"}, ValueError, "framing"),
        ({"on_message": print, "framing": 3}, TypeError, "framing"),
        ({"framing": "line"}, ValueError, "framing applies only with on_message"),
        ({"on_message": print, "max_message": 0}, ValueError, "max_message"),
        ({"on_message": print, "max_message": "big"}, TypeError, "max_message"),
        ({"max_connections": 0}, ValueError, "max_connections"),
        ({"backlog": -1}, ValueError, "backlog"),
        ({"idle_timeout": -1}, ValueError, "idle_timeout"),
        ({"idle_timeout": 0}, ValueError, "idle_timeout"),
        ({"idle_timeout": "1"}, TypeError, "idle_timeout"),
        ({"address": ("127.0.0.1", 70000)}, ValueError, "port must be 0-65535, got 70000"),
        ({"address": 80}, TypeError, "address"),
        ({"bogus": 1}, TypeError, "bogus"),
        ({"broadcast": True}, ValueError, "broadcast"),
    ],
)
def test_argument_errors_name_the_argument(kwargs: dict, exc: type, needle: str) -> None:
    with pytest.raises(exc, match=needle):
        socketkit.TcpServer(**kwargs)


def test_serve_forever_and_accept_need_the_right_mode() -> None:
    with socketkit.TcpServer() as plain, socketkit.TcpServer.echo() as echo:
        with pytest.raises(ValueError, match="serve_forever"):
            plain.serve_forever()
        with pytest.raises(ValueError, match="accept"):
            echo.accept(timeout=0.01)


# --- on_message: slow handlers, big replies ---------------------------------------


@pytest.mark.parametrize("trial", range(5))
def test_slow_on_message_handler_does_not_block_other_connections(trial: int) -> None:
    # A handler that blocks holds one event-loop thread; every other client
    # must still be read and answered (the other thread must poll for I/O).
    release = threading.Event()

    def on_message(m: bytes) -> bytes:
        if m == b"slow":
            release.wait(10)
        return m

    with socketkit.TcpServer(on_message=on_message) as srv:
        with connect(srv.address) as slow:
            slow.sendall(b"slow\n")
            assert wait_until(lambda: srv.stats["bytes_in"] == 5)
            fast = [connect(srv.address, timeout=3) for _ in range(20)]
            try:
                for rnd in range(3):
                    for i, f in enumerate(fast):
                        f.sendall(b"%d-%d\n" % (rnd, i))
                    for i, f in enumerate(fast):
                        assert recv_line(f) == b"%d-%d\n" % (rnd, i)
            finally:
                release.set()
                for f in fast:
                    f.close()
            assert recv_line(slow) == b"slow\n"


def test_idle_timeout_spares_a_client_waiting_for_its_reply() -> None:
    def on_message(m: bytes) -> bytes:
        time.sleep(1.0)
        return m

    with socketkit.TcpServer(on_message=on_message, idle_timeout=0.3) as srv:
        with connect(srv.address) as s:
            s.sendall(b"take your time\n")
            assert recv_line(s) == b"take your time\n"


def test_reply_larger_than_the_socket_buffers_arrives_whole_and_in_order() -> None:
    big = bytes(range(256)) * (16 * 1024)  # 4 MiB

    def on_message(m: bytes) -> bytes:
        return big if m == b"big" else m

    # A small send buffer: the handler thread cannot write it all at once.
    with socketkit.TcpServer(on_message=on_message, framing="length", send_buffer=8192) as srv:
        with connect(srv.address) as s:
            s.sendall(frame(b"big") + frame(b"after"))
            time.sleep(0.2)  # let the server hit a full send buffer
            assert recv_frame(s) == big
            assert recv_frame(s) == b"after"
        assert wait_until(lambda: srv.stats["bytes_out"] == len(big) + 4 + 9)


def test_stop_from_inside_on_message_is_prompt() -> None:
    holder: dict[str, socketkit.TcpServer] = {}

    def on_message(m: bytes) -> bytes:
        holder["srv"].stop()
        return b"bye"

    srv = socketkit.TcpServer(on_message=on_message)
    holder["srv"] = srv
    srv.start()
    with connect(srv.address) as s:
        s.sendall(b"stop\n")
        t0 = time.monotonic()
        assert closed_by_peer(s)
    srv.stop()
    assert time.monotonic() - t0 < 4.0  # not the whole 5 s stop timeout
    with pytest.raises(ConnectionRefusedError):
        connect(srv.address, timeout=2).close()


def test_echo_idle_timeout_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        socketkit.TcpServer.echo(idle_timeout=0)


def test_on_message_handler_may_run_and_drop_other_servers() -> None:
    # Starting, stopping and garbage-collecting servers from an event-loop
    # thread (a tokio runtime inside another one's thread) must work.
    def on_message(m: bytes) -> bytes:
        with socketkit.TcpServer(on_message=lambda x: x.upper()) as inner:
            with connect(inner.address) as c:
                c.sendall(m + b"\n")
                reply = recv_line(c)
        dropped = socketkit.TcpServer(on_message=lambda x: x)
        dropped.start()
        del dropped
        return reply

    with socketkit.TcpServer(on_message=on_message) as srv:
        with connect(srv.address) as c:
            for i in range(3):
                c.sendall(b"hi%d\n" % i)
                assert recv_line(c) == b"HI%d\n" % i
