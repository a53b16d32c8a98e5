"""Issue 17: what a new user tripped over in the Python API during the
first hour (server byte counts, messages, star imports, rounding, types),
each driven the way the user did it."""

from __future__ import annotations

import json
import pickle
import socket
import subprocess
import sys
import textwrap

import pytest

import socketkit
from socketkit import CheckResult, PingStats, ScanReport

# --- 2. handler mode counts payload bytes, not FINs ------------------------


def _echo_handler(conn: socketkit.TcpClient) -> None:
    while data := conn.recv():
        conn.sendall(data)


@pytest.mark.parametrize("half_close", [False, True], ids=["close", "shutdown"])
def test_2_handler_stats_count_the_payload(half_close: bool) -> None:
    srv = socketkit.TcpServer(handler=_echo_handler)
    with srv:
        for _ in range(30):
            with socket.create_connection(srv.address, timeout=5) as c:
                c.sendall(b"ping")
                if half_close:
                    c.shutdown(socket.SHUT_WR)
                got = b""
                while len(got) < 4:
                    got += c.recv(4 - len(got))
                assert got == b"ping"
    # stop() has joined every handler, so every connection is counted.
    st = srv.stats
    assert (st["accepted"], st["bytes_in"], st["bytes_out"]) == (30, 120, 120), st


# --- 3. a bad value is named, and shown ------------------------------------


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        (("127.0.0.1", "abc"), "got str 'abc'"),
        (("127.0.0.1", 1.5), "got float 1.5"),
        ((5, 80), "got int 5"),
        (("127.0.0.1", "x" * 100), "got str '" + "x" * 40 + "'..."),
    ],
)
def test_3_type_errors_show_the_value(address: object, shown: str) -> None:
    with pytest.raises(TypeError) as ei:
        socketkit.TcpClient(address)  # type: ignore[arg-type]
    assert shown in str(ei.value)
    assert str(ei.value).startswith("address: ")


# --- 7. a star import leaves the builtins alone -----------------------------


def test_7_star_import_keeps_the_builtin_exceptions() -> None:
    code = textwrap.dedent(
        """
        import builtins, socket
        from socketkit import *
        for name in ("TimeoutError", "ConnectionRefusedError", "ConnectionResetError",
                     "ConnectionAbortedError", "BrokenPipeError"):
            assert globals().get(name, getattr(builtins, name)) is getattr(builtins, name), name
        a, b = socket.socketpair()
        a.settimeout(0.01)
        try:
            a.recv(1)
        except TimeoutError:
            print("caught")
        import socketkit
        assert socketkit.TimeoutError is not builtins.TimeoutError
        assert issubclass(socketkit.TimeoutError, builtins.TimeoutError)
        assert "check" in dir() and "TcpClient" in dir()
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "caught\n"


# --- 17. rounded exports, a sentence for an all-closed scan ---------------------


def test_17_exports_round_floats() -> None:
    r = CheckResult("h", "127.0.0.1", 80, "tcp", "open", 0.12519000000000002, None)
    assert '"rtt_ms": 0.12519' in r.to_json() and "0.12519000000000002" not in r.to_json()
    s = PingStats("h", "127.0.0.1", 80, [0.1, 0.3, 0.12519000000000002])
    doc = json.loads(s.to_json())
    for key in ("stdev", "avg", "jitter", "p95"):
        assert len(repr(doc[key]).split(".")[1]) <= 6, (key, doc[key])
    html = s._repr_html_()
    assert "0.11374936995737603" not in html and str(round(s.stdev or 0, 3)) in html


def test_17_an_all_closed_scan_is_a_sentence() -> None:
    closed = [CheckResult("127.0.0.1", "127.0.0.1", p, "tcp", "closed", None, None) for p in (1, 2)]
    report = ScanReport(closed, ports=2, elapsed=0.01)
    html = report._repr_html_()
    assert "<table" not in html and "<p" in html and "2 closed" in html
    assert repr(report).splitlines()[1].startswith("No open or filtered ports")


# --- 19. types: equal copies, Keepalive pickles, tuple addresses, warnings ------


def test_19_reports_compare_equal_after_pickling() -> None:
    rows = [CheckResult("h", "127.0.0.1", 22, "tcp", "open", 0.1, None)]
    report = ScanReport(rows, ports=1, elapsed=0.5)
    assert pickle.loads(pickle.dumps(report)) == report
    assert report != ScanReport(rows, ports=2, elapsed=0.5)
    stats = PingStats("h", "127.0.0.1", 22, [0.1, None, 0.2])
    assert pickle.loads(pickle.dumps(stats)) == stats
    assert stats != PingStats("h", "127.0.0.1", 22, [0.1, 0.2])


def test_19_keepalive_pickles() -> None:
    for k in (socketkit.Keepalive(idle=60, interval=5, retries=3), socketkit.Keepalive()):
        copy = pickle.loads(pickle.dumps(k))
        assert copy == k and repr(copy) == repr(k)


def test_19_exception_address_is_a_host_port_tuple() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(socketkit.ConnectionRefusedError) as ei:
        socketkit.TcpClient(("127.0.0.1", port), timeout=2)
    assert ei.value.address == ("127.0.0.1", port)
    with pytest.raises(socketkit.ResolveError) as er:
        socketkit.TcpClient("nosuch.invalid:80", timeout=5)
    assert er.value.host == "nosuch.invalid"


def test_19_unclosed_client_warns_under_dev_mode() -> None:
    code = textwrap.dedent(
        """
        import gc, socketkit
        with socketkit.TcpServer.echo() as srv:
            c = socketkit.TcpClient(srv.address)
            del c
            gc.collect()
            with socketkit.TcpClient(srv.address):
                pass
        """
    )
    r = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("ResourceWarning: unclosed <socketkit.TcpClient") == 1, r.stderr
