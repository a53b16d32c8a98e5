"""TcpServer in each mode against stdlib clients: replies, limits, handler
errors, misbehaving peers, lifecycle and argument checks."""

from __future__ import annotations

import logging
import os
import socket
import struct
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
    run_clients,
    wait_until,
)

import socketkit

CLIENTS = 50
ROUNDS = 20


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


def test_echo_counts_bytes_while_the_connection_is_open_and_stop_ends_a_blocked_read() -> None:
    # A plain echo serves each connection with a blocking thread: its stats
    # must still move per message (not only when the connection ends), and
    # stop() must wake a thread blocked reading from a client that says
    # nothing more.
    srv = socketkit.TcpServer.echo()
    with connect(srv.address) as s:
        s.sendall(b"x" * 1000)
        assert recv_exactly(s, 1000) == b"x" * 1000
        assert wait_until(lambda: srv.stats["bytes_out"] == 1000)
        assert srv.stats["bytes_in"] == 1000 and srv.stats["active"] == 1
        t = time.monotonic()
        srv.stop(timeout=5)
        assert time.monotonic() - t < 4  # the 5 s deadline was not needed
        assert closed_by_peer(s)
    assert srv.stats["active"] == 0


def test_echo_past_its_threads_serves_the_rest_on_its_event_loop() -> None:
    # A plain echo gives its first echo_threads connections a thread each
    # and hands the ones past them to its event loop: every connection is
    # answered, the thread count stops growing at the limit, and stop()
    # closes connections of both kinds.
    limit = socketkit._core.DEFAULTS["echo_threads"]
    n = limit + 40

    def threads() -> int:
        return len(os.listdir("/proc/self/task"))

    before = threads()
    srv = socketkit.TcpServer.echo()
    socks = [connect(srv.address) for _ in range(n)]
    try:
        for rnd in range(3):
            for i, s in enumerate(socks):
                s.sendall(b"%d-%d;" % (rnd, i))
            for i, s in enumerate(socks):
                want = b"%d-%d;" % (rnd, i)
                assert recv_exactly(s, len(want)) == want
        assert srv.stats["active"] == n
        # The limit's threads, the accept thread and the loop's two.
        assert limit <= threads() - before <= limit + 8
        srv.stop(timeout=5)
        assert all(closed_by_peer(s) for s in socks)
    finally:
        for s in socks:
            s.close()
        srv.stop()
    assert srv.stats["active"] == 0


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
