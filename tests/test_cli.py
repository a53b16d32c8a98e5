"""The command line, driven as a person or a pipeline would: subprocesses
against servers the tests start (DESIGN.md section 7, issue 5)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from peers import closed_tcp_port as closed_port

import socketkit

CLI = [sys.executable, "-m", "socketkit"]
SUBCOMMANDS = ["check", "scan", "ping", "wait", "tls", "serve", "send", "listen"]


def run(*args: str, timeout: float = 60, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=input is None,
        input=input,
        timeout=timeout,
    )


@contextmanager
def listening() -> Iterator[int]:
    """A stdlib TCP listener on 127.0.0.1 that accepts and closes in a thread."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()

    th = threading.Thread(target=loop)
    th.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        th.join()
        srv.close()


def one_line_error(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "error" in lines[0]
    assert "Traceback" not in r.stderr


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"socketkit {socketkit.__version__}"


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help_with_an_example(sub: str) -> None:
    r = run(sub, "--help")
    assert r.returncode == 0, r.stderr
    assert "example" in r.stdout
    assert "--json" in r.stdout


def test_console_script_is_installed() -> None:
    r = subprocess.run(["socketkit", "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("socketkit ")


# --- check -----------------------------------------------------------------


def test_check_open_closed_and_json() -> None:
    with listening() as port:
        closed = closed_port()
        ok = run("check", f"127.0.0.1:{port}")
        assert ok.returncode == 0, ok.stderr
        assert "open" in ok.stdout and f"127.0.0.1:{port}" in ok.stdout

        mixed = run("check", f"127.0.0.1:{port}", f"127.0.0.1:{closed}", "--json")
        assert mixed.returncode == 1
        doc = json.loads(mixed.stdout)
        assert [(d["host"], d["port"], d["state"]) for d in doc] == [
            ("127.0.0.1", port, "open"),
            ("127.0.0.1", closed, "closed"),
        ]
        assert doc[0]["rtt_ms"] > 0
        assert doc[1]["rtt_ms"] is None or doc[1]["rtt_ms"] >= 0


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "nocolon"],
        ["check", "127.0.0.1:70000"],
        ["check"],
        ["scan", "127.0.0.1", "-p", "5-1"],
        ["scan", "10.0.0.0/33", "-p", "80"],
        ["ping", "127.0.0.1:80", "-c", "0"],
        ["wait", "nocolon", "--timeout", "1"],
        ["send", "nocolon", "x"],
        ["serve", "chargen"],
        ["check", "127.0.0.1:80", "--timeout", "-1"],
        ["check", "127.0.0.1:80", "--", "echo"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str]) -> None:
    one_line_error(run(*argv))


# --- scan ------------------------------------------------------------------


def test_scan_lists_open_ports_and_json() -> None:
    with listening() as port:
        closed = closed_port()
        r = run("scan", "127.0.0.1", "-p", f"{closed},{port}", "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        states = {d["port"]: d["state"] for d in doc["results"]}
        assert states == {closed: "closed", port: "open"}
        only_open = run("scan", "127.0.0.1", "-p", f"{closed},{port}", "--open")
        assert only_open.returncode == 0
        assert str(port) in only_open.stdout
        assert f" {closed} " not in only_open.stdout
        assert "1 open" in only_open.stdout


def test_scan_with_nothing_open_exits_1() -> None:
    r = run("scan", "127.0.0.1", "-p", str(closed_port()))
    assert r.returncode == 1
    assert "1 closed" in r.stdout


# --- ping ------------------------------------------------------------------


def test_ping_lines_and_summary() -> None:
    with listening() as port:
        r = run("ping", f"127.0.0.1:{port}", "-c", "3", "-i", "0.05")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert sum("seq=" in line for line in lines) == 3
        assert "3 probes sent, 3 successful, 0.0% loss" in r.stdout
        assert "rtt min/avg/max/stdev" in r.stdout

        j = run("ping", f"127.0.0.1:{port}", "-c", "2", "-i", "0", "--json")
        docs = [json.loads(line) for line in j.stdout.splitlines()]
        assert [d["seq"] for d in docs[:2]] == [1, 2]
        assert all(d["state"] == "open" and d["rtt_ms"] > 0 for d in docs[:2])
        assert docs[2]["summary"]["sent"] == 2 and docs[2]["summary"]["received"] == 2


def test_ping_closed_port_exits_1() -> None:
    r = run("ping", f"127.0.0.1:{closed_port()}", "-c", "2", "-i", "0")
    assert r.returncode == 1
    assert "100.0% loss" in r.stdout


# --- wait ------------------------------------------------------------------


def test_wait_runs_the_command_only_after_the_port_opens() -> None:
    port = closed_port()
    opened_at: list[float] = []
    srv_holder: list[socket.socket] = []

    def open_later() -> None:
        time.sleep(1.0)
        srv_holder.append(socket.create_server(("127.0.0.1", port)))
        opened_at.append(time.time())

    th = threading.Thread(target=open_later)
    th.start()
    try:
        code = "import sys, time; print(time.time()); sys.exit(3)"
        r = run("wait", f"127.0.0.1:{port}", "--timeout", "20", "--", sys.executable, "-c", code)
    finally:
        th.join()
        for s in srv_holder:
            s.close()
    assert r.returncode == 3, r.stderr  # the command's own status
    ran_at = float(r.stdout.strip().splitlines()[-1])
    assert opened_at and ran_at >= opened_at[0]


def test_wait_timeout_exits_124_and_does_not_run_the_command() -> None:
    r = run(
        "wait", f"127.0.0.1:{closed_port()}", "--timeout", "0.5", "--", sys.executable, "-c", "print('ran')"
    )
    assert r.returncode == 124
    assert "ran" not in r.stdout
    assert "Traceback" not in r.stderr


def test_wait_json() -> None:
    with listening() as port:
        r = run("wait", f"127.0.0.1:{port}", "--timeout", "5", "--json")
        assert r.returncode == 0
        doc = json.loads(r.stdout)
        assert doc["ok"] is True and doc["targets"] == [f"127.0.0.1:{port}"]


# --- serve + send, listen --------------------------------------------------


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [*CLI, "serve", *args, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "serve printed nothing"
        doc = json.loads(proc.stdout.readline())
        yield proc, doc["listening"]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _interrupt(proc: subprocess.Popen[str]) -> tuple[float, str]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    return time.monotonic() - t0, err


@pytest.mark.parametrize("udp", [False, True], ids=["tcp", "udp"])
def test_serve_echo_and_send_round_trip(udp: bool) -> None:
    flag = ["--udp"] if udp else []
    with serving("echo", "127.0.0.1:0", *flag) as (proc, where):
        extra = [] if udp else ["--until", "\\n"]
        r = run("send", where, "hello\\n", *flag, *extra, "--timeout", "5")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello\n"
        j = run("send", where, "abc\\n", *flag, *extra, "--json", "--timeout", "5")
        doc = json.loads(j.stdout)
        assert doc["reply"] == "abc\n" and doc["sent"] == 4 and doc["rtt_ms"] > 0
        elapsed, err = _interrupt(proc)
        assert proc.returncode == 130, err  # the shell's status for Ctrl-C (issue 17)
        assert elapsed < 2.0
        assert "Traceback" not in err


def test_serve_stops_cleanly_on_sigterm() -> None:
    with serving("discard") as (proc, where):
        with socket.create_connection(tuple_of(where), timeout=5) as c:
            c.sendall(b"into the void")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err


def tuple_of(where: str) -> tuple[str, int]:
    host, port = where.rsplit(":", 1)
    return host.strip("[]"), int(port)


def test_send_reads_stdin_and_to_eof() -> None:
    with serving("echo") as (proc, where):
        r = run("send", where, "-", input=b"line one\nline two\n")
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"line one\nline two\n"
        _interrupt(proc)


def test_send_to_closed_port_is_one_line_exit_1() -> None:
    r = run("send", f"127.0.0.1:{closed_port()}", "x", "--timeout", "2")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "refused" in r.stderr.lower()


def test_listen_prints_what_arrives() -> None:
    proc = subprocess.Popen([*CLI, "listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 30)
        assert ready
        line = proc.stderr.readline().decode()  # "socketkit listen: tcp 127.0.0.1:PORT"
        port = int(line.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"from a stdlib client\n")
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert out == b"from a stdlib client\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_listen_udp_json_lines() -> None:
    proc = subprocess.Popen(
        [*CLI, "listen", "127.0.0.1:0", "--udp", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        ready, _, _ = select.select([proc.stderr], [], [], 30)
        assert ready
        port = int(proc.stderr.readline().rsplit(":", 1)[1])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with s:
            s.sendto(b"datagram", ("127.0.0.1", port))
            ready, _, _ = select.select([proc.stdout], [], [], 10)
            assert ready
            doc = json.loads(proc.stdout.readline())
            assert doc["data"] == "datagram"
            assert doc["peer"].endswith(f":{s.getsockname()[1]}")
        elapsed, err = _interrupt(proc)  # type: ignore[arg-type]
        assert proc.returncode == 130 and elapsed < 2.0, err  # Ctrl-C (issue 17)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_python_dash_m_and_no_args() -> None:
    r = run()
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert os.path.exists(os.path.join(os.path.dirname(socketkit.__file__), "__main__.py"))
