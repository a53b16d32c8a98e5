"""wait_for states (issue 13): closed, drained (TIME_WAIT ignored unless
told otherwise), delay, a per-attempt connect timeout under the overall
one; and the CLI's wait --state/--delay/--connect-timeout. Every target
is a real listener on loopback that the test controls."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from _probe_util import full_backlog
from peers import closed_tcp_port as closed_port
from test_cli import run

import socketkit


def test_closed_waits_for_a_server_that_stops() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    stopper = threading.Timer(0.3, srv.close)
    stopper.start()
    try:
        waited = socketkit.wait_for(("127.0.0.1", port), state="closed", timeout=10, interval=0.05)
    finally:
        stopper.join()
        srv.close()
    assert 0.25 <= waited < 5


def test_closed_times_out_while_the_server_accepts() -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        with pytest.raises(socketkit.TimeoutError, match="still accepting"):
            socketkit.wait_for(f"127.0.0.1:{port}", state="closed", timeout=0.3, interval=0.05)
    assert socketkit.wait_for(f"127.0.0.1:{port}", state="closed", timeout=2) < 1


def test_a_silent_target_counts_as_closed() -> None:
    with full_backlog() as port:
        waited = socketkit.wait_for(("127.0.0.1", port), state="closed", connect_timeout=0.2, timeout=5)
    assert waited < 2


def fresh_listener() -> socket.socket:
    """A listener on a port no other socket uses: without SO_REUSEADDR,
    bind() does not pick a port where old connections (FIN_WAIT2,
    TIME_WAIT) of an earlier server linger, which would hold a drain."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_drained_waits_for_a_held_connection_to_close() -> None:
    with fresh_listener() as srv:
        port = srv.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = srv.accept()
        with pytest.raises(socketkit.TimeoutError, match="still open"):
            socketkit.wait_for(("127.0.0.1", port), state="drained", timeout=0.3, interval=0.05)

        def hang_up() -> None:
            conn.close()  # the server closes first: its side goes to TIME_WAIT
            client.recv(1)
            client.close()

        t = threading.Timer(0.3, hang_up)
        t.start()
        try:
            waited = socketkit.wait_for(("127.0.0.1", port), state="drained", timeout=10, interval=0.05)
        finally:
            t.join()
        assert 0.25 <= waited < 5
        # The server side sits in TIME_WAIT: that holds a drain that counts it.
        with pytest.raises(socketkit.TimeoutError):
            socketkit.wait_for(("127.0.0.1", port), state="drained", drain_ignore=(), timeout=0.3)
        # ... and not the default one, nor one that names it another way.
        socketkit.wait_for(("0.0.0.0", port), state="drained", drain_ignore=["time-wait"], timeout=2)


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="state"):
        socketkit.wait_for("127.0.0.1:1", state="up", timeout=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown TCP state"):
        socketkit.wait_for("127.0.0.1:1", state="drained", drain_ignore=["WAITING"])
    with pytest.raises(TypeError, match="not a str"):
        socketkit.wait_for("127.0.0.1:1", state="drained", drain_ignore="TIME_WAIT")
    with pytest.raises(ValueError, match="state='open'"):
        socketkit.wait_for("127.0.0.1:1", state="closed", send=b"x")
    with pytest.raises(ValueError, match="delay"):
        socketkit.wait_for("127.0.0.1:1", delay=-1)


def test_delay_comes_first_and_counts_toward_the_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        waited = socketkit.wait_for(("127.0.0.1", port), delay=0.2, timeout=5)
        assert waited >= 0.2
        start = time.monotonic()
        with pytest.raises(socketkit.TimeoutError):
            socketkit.wait_for(("127.0.0.1", closed_port()), delay=0.2, timeout=0.3)
        assert time.monotonic() - start < 2


def test_the_timeout_bounds_a_long_connect_timeout() -> None:
    # ansible #74237: a wait whose attempts hang must still end on time.
    with full_backlog() as port:
        start = time.monotonic()
        with pytest.raises(socketkit.TimeoutError):
            socketkit.wait_for(("127.0.0.1", port), connect_timeout=60, timeout=0.5)
        assert time.monotonic() - start < 2


# --- the CLI ------------------------------------------------------------------------


def test_cli_wait_closed_and_drained() -> None:
    port = closed_port()
    r = run("wait", f"127.0.0.1:{port}", "--state", "closed", "--timeout", "5")
    assert r.returncode == 0, r.stderr
    assert "to close" in r.stderr and "closed after" in r.stderr
    r = run("wait", f"127.0.0.1:{port}", "--state", "drained", "--delay", "0.1", "--json")
    assert r.returncode == 0 and '"ok": true' in r.stdout
    with fresh_listener() as srv:
        port = srv.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            r = run("wait", f"127.0.0.1:{port}", "--state", "drained", "--timeout", "0.3")
    assert r.returncode == 124 and "still open" in r.stderr and "ESTABLISHED" in r.stderr


def test_cli_wait_connect_timeout_and_usage_errors() -> None:
    with full_backlog() as port:
        r = run("wait", f"127.0.0.1:{port}", "--connect-timeout", "0.1", "--timeout", "0.5", "-q")
    assert r.returncode == 124
    r = run("wait", "127.0.0.1:1", "--state", "closed", "--send", "x")
    assert r.returncode == 2 and "--state open" in r.stderr
    r = run("wait", "127.0.0.1:1", "--state", "gone")
    assert r.returncode == 2
    r = run("wait", "127.0.0.1:1", "--state", "drained", "--drain-ignore", "NOPE")
    assert r.returncode == 2 and "unknown TCP state" in r.stderr
