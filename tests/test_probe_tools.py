"""tcping, wait_for, banner, udp_probe."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from _probe_util import Server, closed_port, full_backlog, listeners

import socketkit
from socketkit import PingStats


def test_tcping_stats_are_consistent():
    with listeners(1) as (port,):
        s = socketkit.tcping("127.0.0.1", port, count=6, interval=0.02)
    assert isinstance(s, PingStats)
    assert (s.sent, s.received, s.loss, s.loss_percent) == (6, 6, 0.0, 0.0)
    assert len(s.rtts) == 6 and all(r > 0 for r in s.rtts)
    assert s.min is not None and s.max is not None and s.avg is not None
    assert s.min <= s.median <= s.max
    assert s.min <= s.avg <= s.max
    assert s.min <= s.p95 <= s.max
    assert s.stdev is not None and s.stdev >= 0
    assert s.jitter is not None and 0 <= s.jitter <= s.max - s.min
    diffs = [abs(b - a) for a, b in zip(s.rtts, s.rtts[1:], strict=False)]
    assert s.jitter == pytest.approx(sum(diffs) / len(diffs))
    assert s.is_alive and s.packet_loss == 0.0 and s.transmitted_packets == 6
    assert s.address == "127.0.0.1" and s.port == port
    assert "6 sent, 6 received" in repr(s)
    assert "<table" in s._repr_html_()
    assert s.to_dict()["received"] == 6
    assert len(s.to_dicts()) == 6


def test_tcping_closed_port_loses_everything():
    s = socketkit.tcping("127.0.0.1", closed_port(), count=3, interval=0.01)
    assert (s.sent, s.received) == (3, 0)
    assert s.loss == 1.0 and s.loss_percent == 100.0
    assert s.min is None and s.jitter is None and s.min_rtt == 0.0
    assert not s.is_alive
    assert all(e for e in s.errors)


def test_tcping_interval_spaces_pings():
    with listeners(1) as (port,):
        start = time.monotonic()
        socketkit.tcping(f"localhost:{port}", count=3, interval=0.1)
    assert time.monotonic() - start >= 0.18


def test_wait_for_a_port_that_opens_after_one_second():
    port = closed_port()
    holder: list[socket.socket] = []

    def open_later():
        time.sleep(1.0)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(8)
        holder.append(s)

    t = threading.Thread(target=open_later)
    t.start()
    try:
        waited = socketkit.wait_for(f"127.0.0.1:{port}", timeout=10, interval=0.05)
    finally:
        t.join()
        for s in holder:
            s.close()
    assert 0.8 <= waited < 10


def test_wait_for_several_targets():
    with listeners(2) as ports:
        waited = socketkit.wait_for([("127.0.0.1", p) for p in ports], timeout=5)
        assert 0 <= waited < 5
        assert socketkit.wait_for("127.0.0.1", ports[0], timeout=5) >= 0


def test_wait_for_timeout_names_targets_still_down():
    down = closed_port()
    with listeners(1) as (up,), pytest.raises(socketkit.TimeoutError) as exc:
        socketkit.wait_for([f"127.0.0.1:{up}", f"127.0.0.1:{down}"], timeout=0.5, interval=0.05)
    e = exc.value
    assert isinstance(e, TimeoutError)  # the builtin too
    assert f"127.0.0.1:{down}" in str(e)
    assert f"127.0.0.1:{up}" not in str(e)
    assert e.targets == [f"127.0.0.1:{down}"]  # type: ignore[attr-defined]


def test_wait_for_send_expect():
    def pong(conn: socket.socket) -> None:
        if conn.recv(64).startswith(b"PING"):
            conn.sendall(b"+PONG\r\n")

    def silent(conn: socket.socket) -> None:
        conn.recv(64)

    with Server(pong) as srv:
        assert socketkit.wait_for(("127.0.0.1", srv.port), send=b"PING\r\n", expect=b"PONG", timeout=5) < 5
    with Server(silent) as srv, pytest.raises(socketkit.TimeoutError):
        socketkit.wait_for(("127.0.0.1", srv.port), send=b"PING\r\n", expect=b"PONG", timeout=0.5)


def test_banner_from_a_greeting_server():
    def greet(conn: socket.socket) -> None:
        conn.sendall(b"220 smtp.example ESMTP ready\r\n")
        time.sleep(0.3)

    with Server(greet) as srv:
        assert socketkit.banner("127.0.0.1", srv.port) == b"220 smtp.example ESMTP ready\r\n"
        assert socketkit.banner(f"127.0.0.1:{srv.port}", max_bytes=3) == b"220"


def test_banner_with_send_and_silence():
    def echo(conn: socket.socket) -> None:
        conn.sendall(conn.recv(64).upper())
        time.sleep(0.3)

    def silent(conn: socket.socket) -> None:
        time.sleep(0.5)

    with Server(echo) as srv:
        assert socketkit.banner(("127.0.0.1", srv.port), send=b"hello\n") == b"HELLO\n"
    with Server(silent) as srv:
        assert socketkit.banner(("127.0.0.1", srv.port), timeout=0.2) == b""
    with pytest.raises(socketkit.ConnectionRefusedError):
        socketkit.banner("127.0.0.1", closed_port())


def test_udp_probe_open_closed_and_silent():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as echo:
        echo.bind(("127.0.0.1", 0))
        port = echo.getsockname()[1]

        def serve():
            echo.settimeout(5)
            try:
                data, peer = echo.recvfrom(2048)
                echo.sendto(data, peer)
            except OSError:
                pass

        t = threading.Thread(target=serve)
        t.start()
        r = socketkit.udp_probe("127.0.0.1", port, b"hello", timeout=2)
        t.join()
    assert (r.state, r.ok, r.proto, r.address) == ("open", True, "udp", "127.0.0.1")
    assert r.rtt_ms is not None and r.rtt_ms > 0

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tmp:
        tmp.bind(("127.0.0.1", 0))
        closed = tmp.getsockname()[1]
    r = socketkit.udp_probe(f"127.0.0.1:{closed}")
    assert r.state == "closed" and not r.ok

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        r = socketkit.udp_probe(("127.0.0.1", silent.getsockname()[1]), timeout=0.1, retries=1)
    assert r.state == "open|filtered"
    assert socketkit.check(f"127.0.0.1:{closed}", proto="udp").state == "closed"


def test_filtered_port_times_out_in_banner():
    with full_backlog() as port, pytest.raises(socketkit.TimeoutError):
        socketkit.banner("127.0.0.1", port, timeout=0.3)
