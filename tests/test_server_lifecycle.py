"""Server lifecycle: no fd or thread leaks over start/stop cycles, and
Ctrl-C on serve_forever() in a child process."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading

import _child
import pytest
from _server_util import connect, echo_lines, recv_line, wait_until

import socketkit

CYCLES = 50


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _one_cycle(mode: str) -> None:
    if mode == "handler":
        srv = socketkit.TcpServer(handler=echo_lines)
    elif mode == "on_message":
        srv = socketkit.TcpServer(on_message=lambda m: m)
    elif mode == "echo":
        srv = socketkit.TcpServer.echo()
    elif mode == "accept":
        srv = socketkit.TcpServer()
    if mode == "udp":
        with (
            socketkit.UdpServer(handler=lambda d, p: d) as u,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
        ):
            s.settimeout(5)
            s.sendto(b"x", u.address)
            assert s.recvfrom(10)[0] == b"x"
        return
    with srv:
        with connect(srv.address) as c:
            if mode == "accept":
                conn, _ = srv.accept()
                conn.close()
            else:
                c.sendall(b"ping\n")
                assert recv_line(c) == b"ping\n"
        # one client left open: stop must close it
        idle = connect(srv.address)
    idle.close()


pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")


@pytest.mark.parametrize("mode", ["accept", "handler", "on_message", "echo", "udp"])
def test_start_stop_cycles_leave_fds_and_threads_at_baseline(mode: str) -> None:
    _one_cycle(mode)  # warm-up: imports, logging, lazily made objects
    fds, threads, py_threads = fd_count(), os_threads(), threading.active_count()
    for _ in range(CYCLES):
        _one_cycle(mode)
    assert wait_until(lambda: os_threads() <= threads, within=5), (os_threads(), threads)
    assert fd_count() <= fds, (fd_count(), fds)
    assert threading.active_count() <= py_threads


def test_dropped_server_without_stop_frees_its_port() -> None:
    fds = fd_count()
    srv = socketkit.TcpServer(handler=echo_lines)
    srv.start()
    address = srv.address
    with connect(address) as c:
        c.sendall(b"a\n")
        assert recv_line(c) == b"a\n"
        del srv
        assert wait_until(lambda: fd_count() <= fds + 1)  # + the client
    with pytest.raises(ConnectionRefusedError):
        connect(address, timeout=2).close()


SERVE_CODE = {
    "handler": "srv = socketkit.TcpServer(handler=lambda c: [c.sendall(l) for l in c.lines()])\n",
    "on_message": "srv = socketkit.TcpServer(on_message=lambda m: m)\n",
    "echo": "srv = socketkit.TcpServer.echo()\n",
}


@pytest.mark.parametrize("mode", ["handler", "on_message", "echo", "udp"])
def test_ctrl_c_stops_serve_forever(mode: str) -> None:
    if mode == "udp":
        body = """
            srv = socketkit.UdpServer(handler=lambda d, p: d)
            srv.start()
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.settimeout(5)
            u.sendto(b"x", srv.address)
            assert u.recvfrom(10)[0] == b"x"
        """
    else:
        body = SERVE_CODE[mode] + textwrap.dedent(
            """
            srv.start()
            c = socket.create_connection(srv.address, timeout=5)
            c.sendall(b"x\\n")
            assert c.recv(10) == b"x\\n"  # a connection is open and served
            """
        )
    code = (
        textwrap.dedent(
            """
        import socket, sys
        import socketkit
        """
        )
        + textwrap.dedent(body)
        + textwrap.dedent(
            """
        print("READY", flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            print("INTERRUPTED", srv.running, flush=True)
            sys.exit(0)
        print("RETURNED", flush=True)
        """
        )
    )
    proc = _child.start(code)
    out = _child.interrupt(proc)
    assert out.seconds_to_exit < 2.0, out
    assert "INTERRUPTED False" in out.stdout, out
    assert out.returncode == 0, out
    assert "Traceback" not in out.stderr and "Exception in thread" not in out.stderr, out.stderr


def test_ctrl_c_interrupts_accept() -> None:
    code = textwrap.dedent(
        """
        import socketkit
        srv = socketkit.TcpServer()
        print("READY", flush=True)
        try:
            srv.accept()
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
        """
    )
    proc = _child.start(code)
    out = _child.interrupt(proc)
    assert out.seconds_to_exit < 2.0, out
    assert "INTERRUPTED" in out.stdout, out
    assert "Traceback" not in out.stderr, out.stderr


def test_logging_from_handler_threads_leaves_no_dummy_threads(caplog: pytest.LogCaptureFixture) -> None:
    """logging calls threading.current_thread(), which registers a
    _DummyThread for foreign threads; the server removes them."""

    def handler(conn: socketkit.TcpClient) -> None:
        raise RuntimeError("logged from a server thread")

    base = threading.active_count()
    with caplog.at_level(logging.ERROR, logger="socketkit"):
        with socketkit.TcpServer(handler=handler) as srv:
            for _ in range(10):
                with connect(srv.address) as c:
                    c.recv(10)
            assert wait_until(lambda: srv.stats["handler_errors"] == 10)
    assert len([r for r in caplog.records if r.exc_info]) == 10
    assert wait_until(lambda: threading.active_count() == base)


@pytest.mark.parametrize("mode", ["on_message", "handler", "udp"])
def test_script_exiting_with_a_busy_server_running_exits_cleanly(mode: str) -> None:
    # A script that forgets stop(): messages arrive while the interpreter
    # shuts down, and handlers are mid-call. The server's threads must
    # neither panic nor print anything, and the exit is prompt.
    code = textwrap.dedent(
        f"""
        import socket, time, socketkit
        mode = {mode!r}
        def on_message(m):
            if m == b"slow":
                time.sleep(0.5)
            return m
        def handler(conn):
            conn.recv(10)
            time.sleep(0.5)
        def on_datagram(data, peer):
            return on_message(data)
        if mode == "on_message":
            srv = socketkit.TcpServer(on_message=on_message, framing="raw")
        elif mode == "handler":
            srv = socketkit.TcpServer(handler=handler)
        else:
            srv = socketkit.UdpServer(handler=on_datagram)
        srv.start()
        kind = socket.SOCK_DGRAM if mode == "udp" else socket.SOCK_STREAM
        socks = [socket.socket(socket.AF_INET, kind)]
        for s in socks:
            s.connect(srv.address)
        socks[0].send(b"slow")  # arrives while, or after, the interpreter ends
        print("exiting")
        """
    )
    for _ in range(5):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert (r.returncode, r.stdout, r.stderr) == (0, "exiting\n", "")
