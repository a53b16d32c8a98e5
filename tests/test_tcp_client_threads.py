"""TcpClient: from_socket/detach, repr, and use from several threads."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time

import pytest
from peers import MiB, blocked_in_poll, can_see_blocked_threads, serve_bytes

import socketkit

# --- from_socket / detach ------------------------------------------------------


def test_from_socket_detach_round_trip(echo_server):
    s = socket.create_connection(echo_server.address, timeout=4)
    fd = s.fileno()
    c = socketkit.TcpClient.from_socket(s)
    assert s.fileno() == -1  # the stdlib object gave its fd away
    assert c.fileno() == fd
    assert c.gettimeout() == 4.0
    assert c.peer_address == echo_server.address
    assert c.request(b"adopted\n") == b"adopted\n"
    back = c.detach()
    assert c.closed
    assert c.fileno() == -1
    with back:
        assert isinstance(back, socket.socket)
        assert back.fileno() == fd
        assert back.gettimeout() == 4.0
        back.sendall(b"returned\n")
        assert back.recv(100) == b"returned\n"
    s.close()


def test_detach_blocking_socket_without_timeout(echo_server):
    s = socket.create_connection(echo_server.address)
    s.settimeout(None)
    with socketkit.TcpClient.from_socket(s) as c:
        assert c.gettimeout() is None
        back = c.detach()
    with back:
        assert back.gettimeout() is None
        assert back.getblocking()
        back.sendall(b"b\n")
        assert back.recv(10) == b"b\n"
    s.close()


def test_detach_refused_while_bytes_are_buffered(tcp_peer):
    srv = tcp_peer(serve_bytes(b"one\ntwo\n"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        assert c.recv_exact(4) == b"one\n"
        # "two\n" may still be in the kernel; read a line so it is surely
        # consumed from the buffer after detach is refused below.
        c2 = c.recv_until(b"t")
        assert c2 == b"t"
        with pytest.raises(ValueError, match="buffered"):
            c.detach()
        assert c.recv_line() == b"wo\n"


def test_from_socket_rejects_wrong_sockets():
    with pytest.raises(TypeError, match="sock"):
        socketkit.TcpClient.from_socket(3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, pytest.raises(ValueError, match="sock"):
        socketkit.TcpClient.from_socket(u)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
        with pytest.raises(OSError):
            socketkit.TcpClient.from_socket(t)  # not connected
        assert t.fileno() != -1  # a refused socket stays the caller's
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(ValueError, match="AF_INET"):
            socketkit.TcpClient.from_socket(a)
        assert a.fileno() != -1
        a.sendall(b"still mine")
        assert b.recv(100) == b"still mine"


# --- repr ------------------------------------------------------------------------


def test_repr_shows_both_ends_and_state(echo_server):
    c = socketkit.TcpClient(echo_server.address, timeout=1.5)
    r = repr(c)
    host, port = c.local_address
    assert "TcpClient" in r
    assert f"{host}:{port}" in r
    assert f"127.0.0.1:{echo_server.address[1]}" in r
    assert "open" in r
    assert "1.5" in r
    c.close()
    r = repr(c)
    assert "closed" in r
    assert f"127.0.0.1:{echo_server.address[1]}" in r


# --- threads ---------------------------------------------------------------------


def test_full_duplex_16_mib_from_two_threads(echo_server):
    data = os.urandom(16 * MiB)
    errors: list[BaseException] = []
    received = hashlib.sha256()
    count = [0]

    with socketkit.TcpClient(echo_server.address, timeout=30) as c:

        def writer() -> None:
            try:
                c.sendall(data)
            except BaseException as e:
                errors.append(e)

        def reader() -> None:
            try:
                while count[0] < len(data):
                    b = c.recv(1 << 18)
                    if not b:
                        break
                    received.update(b)
                    count[0] += len(b)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "full duplex deadlocked"
    assert errors == []
    assert count[0] == len(data)
    assert received.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(
    not can_see_blocked_threads(), reason="finding a blocked thread reads /proc/<tid>/syscall"
)
def test_close_from_another_thread_wakes_blocked_recv(echo_server):
    c = socketkit.TcpClient(echo_server.address)  # no timeout: blocks forever
    outcome: list[object] = []

    def reader() -> None:
        try:
            outcome.append(c.recv())
        except OSError as e:
            outcome.append(e)

    t = threading.Thread(target=reader)
    t.start()
    assert blocked_in_poll(t), "the reader never blocked in poll"
    t0 = time.monotonic()
    c.close()
    t.join(5)
    assert not t.is_alive(), "close() did not wake the blocked recv"
    assert time.monotonic() - t0 < 5
    assert len(outcome) == 1
    # Woken with an error (the docstring's promise), never data.
    assert isinstance(outcome[0], OSError), outcome


def test_use_after_close_from_another_thread_raises(echo_server):
    c = socketkit.TcpClient(echo_server.address, timeout=5)
    t = threading.Thread(target=c.close)
    t.start()
    t.join(5)
    with pytest.raises(OSError) as ei:
        c.recv()
    assert ei.value.errno is not None
    with contextlib.suppress(OSError):
        c.close()
