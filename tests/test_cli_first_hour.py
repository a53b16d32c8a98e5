"""Issue 17: what a new user tripped over in the command line during the
first hour, each driven the way the user did it (the CLI in a subprocess)."""

from __future__ import annotations

import json
import re
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
from test_cli import CLI, SUBCOMMANDS, listening, one_line_error, run, serving, tuple_of
from test_cli_tls import tls_handler


@contextmanager
def udp_peer(reply: bool = True) -> Iterator[tuple[list[bytes], int]]:
    """A stdlib UDP socket on 127.0.0.1 that answers upper-cased (or stays
    silent); yields the datagrams it got and its port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.1)
    stop = threading.Event()
    got: list[bytes] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                data, peer = s.recvfrom(65536)
            except TimeoutError:
                continue
            got.append(data)
            if reply:
                s.sendto(data.upper() or b"!", peer)

    th = threading.Thread(target=loop)
    th.start()
    try:
        yield got, s.getsockname()[1]
    finally:
        stop.set()
        th.join()
        s.close()


def closed_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def started(argv: list[str], stream: str = "stdout") -> tuple[subprocess.Popen[str], str]:
    """A CLI process and the first line it wrote on ``stream``."""
    proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    ready, _, _ = select.select([pipe], [], [], 30)
    assert ready, f"{argv} printed nothing"
    return proc, pipe.readline()


def interrupted(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, out, err


# --- 1. options go anywhere, and errors name the subcommand ------------------------


def test_1_options_before_positionals() -> None:
    with serving("echo", "--udp", "127.0.0.1:0") as (_proc, where):
        assert where.startswith("127.0.0.1:")
        r = run("send", where, "--timeout", "2", "hello\\n", "--udp")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello\n"
    with serving("echo") as (_proc, where):
        r = run("send", "--until", "\\n", where, "--timeout", "2", "hi\\n")
        assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    bad = run("send", "127.0.0.1:1", "x", "--bogus")
    one_line_error(bad)
    assert bad.stderr.startswith("socketkit send: error:"), bad.stderr


# --- 4. one port range per context, stated the same way ----------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["scan", "127.0.0.1", "-p", "0"],
        ["scan", "127.0.0.1", "-p", "65536"],
        ["scan", "127.0.0.1", "-p", "abc"],
        ["check", "127.0.0.1:0"],
        ["check", "127.0.0.1:70000"],
        ["check", "127.0.0.1:abc"],
        ["ping", "127.0.0.1:70000"],
        ["send", "127.0.0.1:abc", "x"],
        ["wait", "127.0.0.1:0"],
    ],
)
def test_4_a_probed_port_is_1_to_65535_however_it_is_wrong(argv: list[str]) -> None:
    r = run(*argv)
    one_line_error(r)
    assert "port must be 1-65535, got " in r.stderr, r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize(
    "argv", [["serve", "echo", "127.0.0.1:70000"], ["listen", "127.0.0.1:abc"]], ids=["serve", "listen"]
)
def test_4_a_bound_port_is_0_to_65535(argv: list[str]) -> None:
    r = run(*argv)
    one_line_error(r)
    assert "port must be 0-65535, got " in r.stderr, r.stderr


# --- 5, 6, 16: numbers checked up front, before anything is printed -----------------


@pytest.mark.parametrize(
    "argv",
    [
        ["ping", "127.0.0.1:1", "-i", "inf"],
        ["ping", "127.0.0.1:1", "-i", "1e10"],
        ["ping", "127.0.0.1:1", "-i", "nan"],
        ["ping", "127.0.0.1:1", "--timeout", "nan"],
        ["ping", "127.0.0.1:1", "-c", "0"],
        ["ping", "127.0.0.1"],
        ["check", "127.0.0.1:1", "--timeout", "1e308"],
        ["check", "127.0.0.1:1", "--concurrency", "0"],
        ["scan", "127.0.0.1", "-p", "1", "--rate", "-5"],
        ["scan", "127.0.0.1", "-p", "1", "--timeout", "inf"],
        ["wait", "127.0.0.1:1", "--interval", "nan"],
        ["send", "127.0.0.1:1", "x", "--max-size", "-1"],
        ["send", "127.0.0.1:1", "x", "--retries", "-1"],
    ],
)
def test_5_6_bad_numbers_are_usage_errors_before_any_output(argv: list[str]) -> None:
    r = run(*argv, timeout=30)
    one_line_error(r)
    assert r.stdout == "", r.stdout  # no TCPING header, no probe line
    assert len(r.stderr) < 200, r.stderr  # 1e308 is not echoed as 309 digits


# --- 8. a URL is not a target ------------------------------------------------------


def test_8_url_targets_say_so() -> None:
    r = run("check", "http://127.0.0.1:7000")
    one_line_error(r)
    assert "a target is host:port, not a URL" in r.stderr
    assert "try '127.0.0.1:7000'" in r.stderr
    assert "brackets" not in r.stderr


# --- 10. --json documented in each --help, and the documented keys are the real ones


def documented_keys(sub: str) -> list[frozenset[str]]:
    text = run(sub, "--help").stdout
    assert "--json output:" in text
    doc = text.split("--json output:", 1)[1]
    return [frozenset(k.strip() for k in m.split(",")) for m in re.findall(r"\{([a-z0-9_, ]+)\}", doc)]


def key_sets(doc: object) -> set[frozenset[str]]:
    """The key sets of every object in a JSON document, nested ones too."""
    out: set[frozenset[str]] = set()
    if isinstance(doc, dict):
        out.add(frozenset(doc))
        for k, v in doc.items():
            if k not in ("counts", "open"):  # maps keyed by states and hosts
                out |= key_sets(v)
    elif isinstance(doc, list):
        for v in doc:
            out |= key_sets(v)
    return out


def json_lines(text: str) -> list[object]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_10_every_documented_json_key_is_what_comes_out(tcp_peer, tls_pki) -> None:
    seen: dict[str, set[frozenset[str]]] = {sub: set() for sub in SUBCOMMANDS}
    tls_target = f"127.0.0.1:{tcp_peer(tls_handler(tls_pki)).address[1]}"
    ca = str(tls_pki.ca.cert)
    with listening() as port:
        target = f"127.0.0.1:{port}"
        for sub, argv in [
            ("check", ["check", target]),
            ("check", ["check", tls_target, "--tls", "--ca", ca]),
            ("tls", ["tls", tls_target, "--ca", ca]),
            ("scan", ["scan", "127.0.0.1", "-p", str(port)]),
            ("ping", ["ping", target, "-c", "1"]),
            ("wait", ["wait", target]),
            ("wait", ["wait", f"127.0.0.1:{closed_port()}", "--timeout", "0.2"]),
        ]:
            r = run(*argv, "--json")
            for doc in json_lines(r.stdout):
                seen[sub] |= key_sets(doc)
    proc, line = started(["serve", "echo", "127.0.0.1:0", "--json"])
    seen["serve"] |= key_sets(json.loads(line))
    r = run("send", json.loads(line)["listening"], "x\\n", "--until", "\\n", "--json")
    seen["send"] |= key_sets(json.loads(r.stdout))
    interrupted(proc)
    proc, line = started(["listen", "127.0.0.1:0", "--udp", "--json"], "stderr")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"d", ("127.0.0.1", int(line.rsplit(":", 1)[1])))
        assert proc.stdout is not None
        select.select([proc.stdout], [], [], 10)
        seen["listen"] |= key_sets(json.loads(proc.stdout.readline()))
    interrupted(proc)
    for sub in SUBCOMMANDS:
        documented = set(documented_keys(sub))
        assert documented, sub
        assert seen[sub] == documented, (sub, seen[sub] ^ documented)


def test_10_readme_documents_the_json_of_each_subcommand() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for sub in SUBCOMMANDS:
        doc = run(sub, "--help").stdout.split("--json output:", 1)[1]
        for keys in re.findall(r"\{[a-z0-9_, ]+\}", doc):
            assert f"`{sub}`" in readme and keys in readme, (sub, keys)


# --- 11. scans show what is worth reading ------------------------------------------


def test_11_scan_hides_closed_ports_like_nmap() -> None:
    with listening() as port:
        closed = closed_port()
        r = run("scan", "127.0.0.1", "-p", f"{closed},{port}")
        assert r.returncode == 0, r.stderr
        rows = [line.split() for line in r.stdout.splitlines()]
        assert any(row[2:5] == [str(port), "tcp", "open"] for row in rows if len(row) > 4)
        assert not any(str(closed) in row for row in rows)
        assert "Not shown: 1 closed port" in r.stdout
        every = run("scan", "127.0.0.1", "-p", f"{closed},{port}", "--all")
        assert any(
            row[2:5] == [str(closed), "tcp", "closed"] for row in map(str.split, every.stdout.splitlines())
        )
    assert "default 1-1024" in run("scan", "--help").stdout


# --- 13. UDP fire-and-forget, and one datagram per line ----------------------------


def test_13_send_udp_no_reply_returns_at_once() -> None:
    with udp_peer(reply=False) as (got, port):
        t0 = time.monotonic()
        r = run("send", f"127.0.0.1:{port}", "hits:1|c", "--udp", "--no-reply", "--timeout", "5")
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert r.stdout == ""
        assert elapsed < 4, elapsed  # no wait for a reply that never comes
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            select.select([], [], [], 0.01)
    assert got == [b"hits:1|c"]  # sent once, not three times


def test_13_listen_udp_prints_one_line_per_datagram() -> None:
    proc, line = started(["listen", "127.0.0.1:0", "--udp"], "stderr")
    port = int(line.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in (b"a:1|c", b"b:2|c"):
            s.sendto(d, ("127.0.0.1", port))
            assert proc.stdout is not None
            select.select([proc.stdout], [], [], 10)
            assert proc.stdout.readline() == d.decode() + "\n"
    code, _, _ = interrupted(proc)
    assert code == 130


# --- 14. UDP checks and scans; service names wherever a port goes -------------------


def test_14_check_and_scan_udp() -> None:
    closed = closed_udp_port()
    with udp_peer() as (_, port):
        r = run("check", f"127.0.0.1:{port}", "--udp", "--json")
        assert r.returncode == 0, r.stderr
        [doc] = json.loads(r.stdout)
        assert (doc["proto"], doc["state"]) == ("udp", "open")
        r = run("check", f"127.0.0.1:{closed}", "-u", "--json")
        assert r.returncode == 1
        assert json.loads(r.stdout)[0]["state"] == "closed"
        r = run("scan", "127.0.0.1", "-p", f"{closed},{port}", "--udp", "--json")
        assert r.returncode == 0, r.stderr
        states = {d["port"]: (d["proto"], d["state"]) for d in json.loads(r.stdout)["results"]}
        assert states == {closed: ("udp", "closed"), port: ("udp", "open")}


@pytest.mark.parametrize("name", ["http", "ssh", "domain"])
def test_14_service_names_are_ports(name: str) -> None:
    port = socket.getservbyname(name)
    r = run("check", f"127.0.0.1:{name}", "--json", "--timeout", "0.5")
    assert r.returncode in (0, 1), r.stderr
    assert json.loads(r.stdout)[0]["port"] == port
    r = run("scan", "127.0.0.1", "-p", name, "--json", "--timeout", "0.5")
    assert [d["port"] for d in json.loads(r.stdout)["results"]] == [port]


# --- 15. Ctrl-C is exit 130 everywhere ---------------------------------------------


def test_15_ctrl_c_exits_130_in_every_long_running_subcommand() -> None:
    proc, _ = started(["wait", f"127.0.0.1:{closed_port()}", "--timeout", "60"], "stderr")
    code, _, err = interrupted(proc)
    assert code == 130, err

    holder = socket.create_server(("127.0.0.1", 0))  # accepts in the backlog, never answers
    with holder:
        proc = subprocess.Popen(
            [*CLI, "send", f"127.0.0.1:{holder.getsockname()[1]}", "x", "--timeout", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        conn, _ = holder.accept()  # connected: send is now waiting for the reply
        with conn:
            conn.recv(1)
            code, _, err = interrupted(proc)
    assert code == 130, err

    with listening() as port:
        proc, _first = started(["ping", f"127.0.0.1:{port}", "-c", "1000", "-i", "0.2"])
        assert proc.stdout is not None
        select.select([proc.stdout], [], [], 10)
        proc.stdout.readline()  # the first probe
        code, out, err = interrupted(proc)
    assert code == 130, err
    assert "tcping statistics" in out  # ping(8)'s way: the summary first

    with serving("discard") as (proc, _where):
        code, _, err = interrupted(proc)
        assert code == 130, err


def test_15_help_documents_the_exit_statuses() -> None:
    for sub in SUBCOMMANDS:
        text = run(sub, "--help").stdout
        assert "130 interrupted" in text, sub
    assert "130" in run("--help").stdout


# --- 16. one vocabulary, and the messages a person reads ---------------------------


def test_16_wait_says_what_it_waits_for_and_shows_cmd_in_usage() -> None:
    with listening() as port:
        r = run("wait", f"127.0.0.1:{port}")
        assert r.returncode == 0
        assert f"waiting up to 30 s for 127.0.0.1:{port}" in r.stderr
    usage = run("wait", "--help").stdout
    assert "[-- CMD [ARG ...]]" in usage.split("\n\n")[0]
    assert "(default 30.0)" in usage


def test_16_help_gives_defaults_and_udp_help() -> None:
    for sub in ("check", "scan", "serve", "send", "listen"):
        text = run(sub, "--help").stdout
        udp = [line for line in text.splitlines() if "--udp" in line and line.startswith("  -")]
        assert udp and len(udp[0].split("--udp", 1)[1].strip()) > 5, (sub, udp)


def test_16_errors_carry_no_errno_prefix() -> None:
    r = run("wait", f"127.0.0.1:{closed_port()}", "--timeout", "0.3")
    assert r.returncode == 124
    assert "[Errno" not in r.stderr and "127.0.0.1" in r.stderr
    r = run("send", f"127.0.0.1:{closed_port()}", "x", "--timeout", "2")
    assert r.returncode == 1 and "[Errno" not in r.stderr


def test_16_tables_say_rtt_and_proto() -> None:
    with listening() as port:
        r = run("check", f"127.0.0.1:{port}")
        header = r.stdout.splitlines()[0].split()
        assert header == ["TARGET", "ADDRESS", "PROTO", "STATE", "RTT", "ERROR"]
        r = run("scan", "127.0.0.1", "-p", str(port))
        assert r.stdout.splitlines()[0].split() == ["HOST", "ADDRESS", "PORT", "PROTO", "STATE", "RTT"]


# --- 12 (terminal part): the plain bar fits, clears, and skips tiny jobs ---------


def on_a_terminal(argv: list[str], columns: int) -> tuple[str, str]:
    """Run the CLI with stderr on a pseudo-terminal ``columns`` wide."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([*CLI, *argv], stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    out, _ = proc.communicate(timeout=60)
    return out.decode(), err.decode()


def test_12_progress_fits_a_narrow_terminal_and_is_cleared() -> None:
    out, err = on_a_terminal(["scan", "127.0.0.1", "-p", "1-30000", "--rate", "15000"], 40)
    assert "scanned 1 host(s), 30000 port(s)" in out
    frames = err.split("\r")
    drawn = [f for f in frames if f.strip()]
    assert len(drawn) >= 2, err  # redrawn in place, not once per line
    assert "\n" not in err
    assert all(len(f) <= 39 for f in frames), [f for f in frames if len(f) > 39]
    assert any("/s" in f and "ETA" in f for f in drawn), drawn
    assert frames[-1] == "" and frames[-2].strip() == "", frames[-3:]  # erased when done


def test_12_no_progress_for_a_tiny_job() -> None:
    with listening() as port:
        out, err = on_a_terminal(["check", f"127.0.0.1:{port}"], 80)
    assert "open" in out
    assert err == ""


def test_cli_module_files_stay_small() -> None:
    import socketkit

    root = __import__("pathlib").Path(socketkit.__file__).parent
    for f in root.glob("*.py"):
        assert len(f.read_text().splitlines()) < 600, f


_ = (sys, tuple_of)
