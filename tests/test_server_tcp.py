"""TcpServer in each mode against stdlib clients: replies, limits, handler
errors, misbehaving peers, lifecycle and argument checks."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time

import pytest
from _server_util import (
    closed_by_peer,
    connect,
    frame,
    recv_exactly,
    recv_frame,
    recv_line,
    run_clients,
    wait_until,
)

import socketkit

CLIENTS = 50
ROUNDS = 20


def echo_lines(conn: socketkit.TcpClient) -> None:
    for line in conn.lines():
        conn.sendall(line)


# --- 50 concurrent clients per mode ---------------------------------------


def test_accept_loop_serves_50_concurrent_clients() -> None:
    """The stdlib tutorial's loop, ported 1:1: accept, then a thread each."""
    srv = socketkit.TcpServer()
    workers: list[threading.Thread] = []

    def loop() -> None:
        while True:
            try:
                conn, _peer = srv.accept()
            except socketkit.Error:
                return  # stopped
            t = threading.Thread(target=lambda c=conn: (echo_lines(c), c.close()))
            t.start()
            workers.append(t)

    acceptor = threading.Thread(target=loop)
    acceptor.start()
    try:

        def client(i: int) -> None:
            with connect(srv.address) as s:
                for r in range(ROUNDS):
                    msg = f"client {i} round {r}\n".encode()
                    s.sendall(msg)
                    assert recv_line(s) == msg

        run_clients(CLIENTS, client)
    finally:
        srv.stop()
        acceptor.join(5)
        for t in workers:
            t.join(5)
    assert not acceptor.is_alive()
    assert srv.stats["accepted"] == CLIENTS


def test_handler_mode_serves_50_concurrent_clients() -> None:
    with socketkit.TcpServer(handler=echo_lines) as srv:

        def client(i: int) -> None:
            with connect(srv.address) as s:
                for r in range(ROUNDS):
                    msg = f"{i}:{r}\n".encode()
                    s.sendall(msg)
                    assert recv_line(s) == msg

        run_clients(CLIENTS, client)
        assert wait_until(lambda: srv.stats["active"] == 0)
        st = srv.stats
    assert st["accepted"] == CLIENTS
    assert st["handler_errors"] == 0
    assert st["bytes_in"] > 0 and st["bytes_out"] == st["bytes_in"]


def test_on_message_line_serves_50_concurrent_clients() -> None:
    with socketkit.TcpServer(on_message=lambda m: m.upper()) as srv:

        def client(i: int) -> None:
            with connect(srv.address) as s:
                for r in range(ROUNDS):
                    s.sendall(f"hello {i} {r}\n".encode())
                    assert recv_line(s) == f"HELLO {i} {r}\n".encode()

        run_clients(CLIENTS, client)
        st = srv.stats
    assert st["accepted"] == CLIENTS and st["handler_errors"] == 0


def test_on_message_length_serves_50_concurrent_clients() -> None:
    with socketkit.TcpServer(on_message=lambda m: m[::-1], framing="length") as srv:

        def client(i: int) -> None:
            with connect(srv.address) as s:
                for r in range(ROUNDS):
                    payload = bytes([i, r]) * (r + 1) + b"\n\x00"
                    s.sendall(frame(payload))
                    assert recv_frame(s) == payload[::-1]

        run_clients(CLIENTS, client)


def test_on_message_raw_serves_50_concurrent_clients() -> None:
    # Raw has no boundaries: the client counts bytes, not messages.
    with socketkit.TcpServer(on_message=lambda m: m.swapcase(), framing="raw") as srv:

        def client(i: int) -> None:
            with connect(srv.address) as s:
                for r in range(ROUNDS):
                    msg = f"abc{i}-{r}".encode()
                    s.sendall(msg)
                    assert recv_exactly(s, len(msg)) == msg.swapcase()

        run_clients(CLIENTS, client)


def test_echo_serves_50_concurrent_clients() -> None:
    with socketkit.TcpServer.echo() as srv:
        assert srv.running

        def client(i: int) -> None:
            with connect(srv.address) as s:
                for r in range(ROUNDS):
                    msg = bytes([i]) * (r * 100 + 1)
                    s.sendall(msg)
                    assert recv_exactly(s, len(msg)) == msg

        run_clients(CLIENTS, client)
        assert wait_until(lambda: srv.stats["active"] == 0)
        st = srv.stats
    assert st["bytes_in"] == st["bytes_out"] > 0


def test_pipelined_line_messages_answered_in_order() -> None:
    with socketkit.TcpServer(on_message=lambda m: None if m == b"skip" else m + b"!") as srv:
        with connect(srv.address) as s:
            s.sendall(b"".join(b"%d\n" % i for i in range(100)) + b"skip\nlast\n")
            for i in range(100):
                assert recv_line(s) == b"%d!\n" % i
            assert recv_line(s) == b"last!\n"


def test_length_framing_empty_message_and_wire_format() -> None:
    with socketkit.TcpServer(on_message=lambda m: b"<" + m + b">", framing="length") as srv:
        with connect(srv.address) as s:
            s.sendall(b"\x00\x00\x00\x00")
            assert recv_exactly(s, 6) == b"\x00\x00\x00\x02<>"


# --- handler errors -------------------------------------------------------


def test_handler_exception_is_logged_and_next_client_served(caplog: pytest.LogCaptureFixture) -> None:
    def handler(conn: socketkit.TcpClient) -> None:
        line = conn.recv_line()
        if line == b"boom\n":
            raise RuntimeError("handler blew up")
        conn.sendall(line)

    with caplog.at_level(logging.ERROR, logger="socketkit"):
        with socketkit.TcpServer(handler=handler) as srv:
            with connect(srv.address) as s:
                s.sendall(b"boom\n")
                assert closed_by_peer(s)
            with connect(srv.address) as s:
                s.sendall(b"fine\n")
                assert recv_line(s) == b"fine\n"
            assert wait_until(lambda: srv.stats["handler_errors"] == 1)
    records = [r for r in caplog.records if r.name == "socketkit" and r.levelno == logging.ERROR]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], RuntimeError)
    assert "Traceback" in caplog.text and "handler blew up" in caplog.text


def test_on_message_exception_closes_only_that_connection(caplog: pytest.LogCaptureFixture) -> None:
    def on_message(m: bytes) -> bytes:
        if m == b"boom":
            raise ValueError("bad message")
        return m

    with caplog.at_level(logging.ERROR, logger="socketkit"):
        with socketkit.TcpServer(on_message=on_message) as srv:
            with connect(srv.address) as good, connect(srv.address) as bad:
                good.sendall(b"a\n")
                assert recv_line(good) == b"a\n"
                bad.sendall(b"boom\n")
                assert closed_by_peer(bad)
                good.sendall(b"b\n")
                assert recv_line(good) == b"b\n"
            assert srv.stats["handler_errors"] == 1
    assert any(isinstance(r.exc_info[1], ValueError) for r in caplog.records if r.exc_info)


def test_on_message_wrong_reply_type_is_a_handler_error(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="socketkit"):
        with socketkit.TcpServer(on_message=lambda m: m.decode()) as srv:
            with connect(srv.address) as s:
                s.sendall(b"x\n")
                assert closed_by_peer(s)
            assert srv.stats["handler_errors"] == 1
    assert "must return bytes or None, got str" in caplog.text


def test_stop_from_inside_a_handler() -> None:
    holder: dict[str, socketkit.TcpServer] = {}

    def handler(conn: socketkit.TcpClient) -> None:
        conn.sendall(b"bye\n")
        holder["srv"].stop()

    srv = socketkit.TcpServer(handler=handler)
    holder["srv"] = srv
    srv.start()
    with connect(srv.address) as s:
        assert recv_line(s) == b"bye\n"
    assert wait_until(lambda: not srv.running)
    srv.stop()  # waits for the handler's stop() to finish
    assert srv.fileno() == -1
    with pytest.raises(ConnectionRefusedError):
        connect(srv.address, timeout=2).close()


def test_serve_forever_returns_when_another_thread_stops() -> None:
    srv = socketkit.TcpServer(handler=echo_lines)
    t = threading.Thread(target=srv.serve_forever)
    t.start()
    try:
        with connect(srv.address) as s:
            s.sendall(b"x\n")
            assert recv_line(s) == b"x\n"
    finally:
        srv.stop()
    t.join(5)
    assert not t.is_alive()


# --- limits ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["handler", "on_message", "echo"])
def test_max_connections_rejects_the_sixth(mode: str) -> None:
    if mode == "handler":
        srv = socketkit.TcpServer(handler=echo_lines, max_connections=5)
    elif mode == "on_message":
        srv = socketkit.TcpServer(on_message=lambda m: m, max_connections=5)
    else:
        srv = socketkit.TcpServer.echo(max_connections=5)
    with srv:
        clients = [connect(srv.address) for _ in range(5)]
        try:
            for i, c in enumerate(clients):  # all five are served
                c.sendall(b"%d\n" % i)
                assert recv_line(c) == b"%d\n" % i
            with connect(srv.address) as sixth:
                assert closed_by_peer(sixth)
            assert srv.stats["rejected"] == 1
            clients[0].sendall(b"still\n")
            assert recv_line(clients[0]) == b"still\n"
        finally:
            for c in clients:
                c.close()
        # Slots free again once clients leave.
        assert wait_until(lambda: srv.stats["active"] == 0)
        with connect(srv.address) as again:
            again.sendall(b"z\n")
            assert recv_line(again) == b"z\n"


@pytest.mark.parametrize("mode", ["handler", "on_message", "echo"])
def test_idle_timeout_closes_a_silent_client(mode: str) -> None:
    if mode == "handler":
        srv = socketkit.TcpServer(handler=echo_lines, idle_timeout=0.5)
    elif mode == "on_message":
        srv = socketkit.TcpServer(on_message=lambda m: m, idle_timeout=0.5)
    else:
        srv = socketkit.TcpServer.echo(idle_timeout=0.5)
    with srv:
        with connect(srv.address) as silent:
            assert closed_by_peer(silent, within=2.0)
        with connect(srv.address) as talker:
            # A client that talks more often than the timeout stays open.
            for i in range(3):
                talker.sendall(b"%d\n" % i)
                assert recv_line(talker) == b"%d\n" % i
                time.sleep(0.2)
        assert srv.stats["handler_errors"] == 0


@pytest.mark.parametrize("framing", ["line", "length"])
def test_max_message_exceeded_closes_only_that_connection(framing: str) -> None:
    with socketkit.TcpServer(on_message=lambda m: m, framing=framing, max_message=100) as srv:
        with connect(srv.address) as good, connect(srv.address) as big:
            if framing == "line":
                big.sendall(b"x" * 101 + b"\n")
                good.sendall(b"y" * 100 + b"\n")
                assert recv_line(good) == b"y" * 100 + b"\n"
            else:
                big.sendall(struct.pack(">I", 101))
                good.sendall(frame(b"y" * 100))
                assert recv_frame(good) == b"y" * 100
            assert closed_by_peer(big)
            good.sendall(b"ok\n" if framing == "line" else frame(b"ok"))
            assert (recv_line(good) if framing == "line" else recv_frame(good)).startswith(b"ok")


def test_line_without_newline_over_max_message_closes() -> None:
    with socketkit.TcpServer(on_message=lambda m: m, max_message=1000) as srv:
        with connect(srv.address) as s:
            try:
                s.sendall(b"z" * 5000)
            except ConnectionResetError:
                pass
            assert closed_by_peer(s)


# --- peers that misbehave ---------------------------------------------------


def _reset_mid_message(address: tuple[str, int], partial: bytes) -> None:
    s = connect(address)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.sendall(partial)
    s.close()  # RST


@pytest.mark.parametrize("mode", ["handler", "line", "length", "raw", "echo"])
def test_reset_half_close_and_silent_peers_do_not_disturb_others(mode: str) -> None:
    if mode == "handler":
        srv = socketkit.TcpServer(handler=echo_lines)
    elif mode == "echo":
        srv = socketkit.TcpServer.echo()
    else:
        srv = socketkit.TcpServer(on_message=lambda m: m, framing=mode)
    framed = mode == "length"
    with srv:
        silent = [connect(srv.address) for _ in range(5)]
        try:
            with connect(srv.address) as good:
                for i in range(10):
                    _reset_mid_message(srv.address, b"\x00\x00\x01\x00abc" if framed else b"partial line")
                    # Half-close: send a whole message, shut the write side,
                    # still read the reply, then EOF.
                    with connect(srv.address) as half:
                        msg = frame(b"half") if framed else b"half\n"
                        half.sendall(msg)
                        half.shutdown(socket.SHUT_WR)
                        assert recv_exactly(half, len(msg)) == msg
                        assert closed_by_peer(half)
                    msg = frame(b"good %d" % i) if framed else b"good %d\n" % i
                    good.sendall(msg)
                    assert recv_exactly(good, len(msg)) == msg
        finally:
            for s in silent:
                s.close()
        assert wait_until(lambda: srv.stats["active"] == 0)
        assert srv.stats["handler_errors"] == 0


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
