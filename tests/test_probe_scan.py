"""scan, scan_iter: full loopback scan against /proc and nmap, CIDR,
IPv6, cancellation, GIL release and Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from _probe_util import (
    Server,
    closed_port,
    full_backlog,
    has_ipv6,
    listeners,
    parse_nmap_grepable,
    proc_listening_loopback,
)

import socketkit
from socketkit import ScanReport

HERE = Path(__file__).parent


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_full_scan_in_private_namespace_matches_proc_and_nmap():
    """The exact comparison runs in a private network namespace (needs
    root), where only the test's own listeners exist."""
    r = subprocess.run(
        [sys.executable, str(HERE / "netns_scan_child.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if r.returncode == 77:
        pytest.skip(f"private network namespaces unavailable: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["socketkit"] == out["ours"]
    assert out["socketkit"] == out["proc"]
    assert out["counts"] == {"open": len(out["ours"]), "closed": 65535 - len(out["ours"])}
    if out["nmap"] is None:
        pytest.skip("nmap is not installed")
    assert out["socketkit"] == out["nmap"]


def test_full_scan_on_this_host_finds_the_listening_ports():
    """The same on the shared host loopback, where other processes may open
    and close ports during the scan: every port listening before and after
    is found; every port found was listening at one of the two moments."""
    with listeners(3) as ours:
        # Other programs' short-lived listeners can come and go between the
        # snapshots; a clean attempt out of three is required.
        for _attempt in range(3):
            before = proc_listening_loopback()
            report = socketkit.scan("127.0.0.1", "1-65535")
            after = proc_listening_loopback()
            found = set(report.open_ports())
            assert isinstance(report, ScanReport)
            assert len(report) == 65535
            assert set(ours) <= found
            if (before & after) <= found <= (before | after):
                break
        else:
            pytest.fail(f"scan found {sorted(found)}, /proc had {sorted(before)} then {sorted(after)}")
        if shutil.which("nmap"):
            r = subprocess.run(
                ["nmap", "-sT", "-p-", "-n", "-oG", "-", "127.0.0.1"],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            nmap_open = parse_nmap_grepable(r.stdout)
            # Both saw the listeners that stayed up the whole time.
            stable = before & after & proc_listening_loopback()
            assert stable <= nmap_open
            assert set(ours) <= nmap_open


def test_cidr_scan():
    with listeners(1) as (port,):
        closed = closed_port()
        report = socketkit.scan("127.0.0.0/30", [port, closed], timeout=1.0)
    assert report.hosts == ["127.0.0.0", "127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert len(report) == 8
    assert report.by_host()["127.0.0.1"] == [port]
    assert report.open_ports() == [port]
    assert report.ports == 2
    for r in report:
        assert r.state in ("open", "closed", "filtered", "error")


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")
def test_ipv6_loopback_scan():
    with listeners(2, host="::1") as ports:
        closed = closed_port("::1")
        report = socketkit.scan(["::1"], [*ports, closed])
        report2 = socketkit.scan("[::1]", ",".join(map(str, [*ports, closed])))
    for rep in (report, report2):
        assert rep.open_ports() == sorted(ports)
        assert rep.counts == {"open": 2, "closed": 1}
        assert all(r.address == "::1" for r in rep)


def test_scan_ports_forms_and_order():
    with listeners(1) as (port,):
        report = socketkit.scan("127.0.0.1", range(port, port + 3))
        assert [r.port for r in report] == [port, port + 1, port + 2]
        assert report.open_ports() == [port]
        report = socketkit.scan("127.0.0.1", [port, f"{port}-{port + 1}", port])
        assert [r.port for r in report] == [port, port + 1]


def test_scan_by_name_probes_every_address():
    with listeners(1) as (port,):
        report = socketkit.scan("localhost", port)
    assert report.open_ports("localhost") == [port]
    assert report.results[0].address == "127.0.0.1"
    with pytest.raises(socketkit.ResolveError):
        socketkit.scan("no-such-host.invalid", 80)


def test_scan_report_presentation():
    with listeners(1) as (port,):
        report = socketkit.scan("127.0.0.1", f"{port - 5}-{port + 5}")
    text = repr(report)
    assert "1 host x 11 ports" in text and f"127.0.0.1:{port}" in text and "closed ports not shown" in text
    html = report._repr_html_()
    assert "<table" in html and str(port) in html
    assert len(report.to_dicts()) == 11
    assert json.loads(report.to_json())[5]["port"] == port
    assert report.to_dict()["open"] == {"127.0.0.1": [port]}


def test_scan_iter_streams_and_progress_ends_at_total():
    calls: list[tuple[int, int]] = []
    with listeners(2) as ports:
        got = list(socketkit.scan_iter("127.0.0.1", "1-2000", progress=lambda d, t: calls.append((d, t))))
        got += list(socketkit.scan_iter("127.0.0.1", ports))
    assert len(got) == 2002
    assert sorted(r.port for r in got[-2:] if r.ok) == sorted(ports)
    assert calls[-1] == (2000, 2000)
    calls.clear()
    socketkit.scan("127.0.0.1", "1-3000", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (3000, 3000)


def test_scan_iter_break_cancels_without_leaking():
    before = _fd_count()
    with full_backlog() as port:
        it = socketkit.scan_iter("127.0.0.1", f"1-100,{port}", timeout=30, concurrency=4)
        n = 0
        for _ in it:
            n += 1
            if n == 50:
                break
        it.close()
    deadline = time.monotonic() + 5
    while _fd_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _fd_count() <= before


def test_rate_caps_new_connections():
    start = time.monotonic()
    socketkit.scan("127.0.0.1", "1-11", rate=50)
    # 11 connects at 50/s need at least 10 gaps of 20 ms.
    assert time.monotonic() - start >= 0.18


def test_gil_is_released_during_a_scan():
    count = 0
    stop = threading.Event()

    def spin():
        nonlocal count
        while not stop.is_set():
            count += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        with full_backlog() as port:
            # Four probes that hang for 0.5 s each, two at a time: ~1 s.
            socketkit.check_many([("127.0.0.1", port)] * 4, timeout=0.5, concurrency=2)
    finally:
        stop.set()
        t.join()
    assert count > 10_000


CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {here!r})
    from _probe_util import full_backlog, closed_port
    import socketkit
    with full_backlog() as port:
        print("READY", flush=True)
        start = time.monotonic()
        try:
            {call}
        except KeyboardInterrupt:
            print("KeyboardInterrupt after %.3f" % (time.monotonic() - start), flush=True)
            sys.exit(0)
    print("finished without interrupt", flush=True)
    sys.exit(1)
    """
)


def _interrupt_child(call: str) -> str:
    code = CHILD.format(here=str(HERE), call=call)
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.strip() == "READY", line + p.stderr.read() if p.stderr else ""
        time.sleep(0.3)  # let the call start blocking
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, out + err
    assert "KeyboardInterrupt" in out
    assert took < 2.0, took
    return out


def test_ctrl_c_during_a_long_scan():
    _interrupt_child('socketkit.check_many([("127.0.0.1", port)] * 1000, timeout=30, concurrency=4)')


def test_ctrl_c_during_scan_iter():
    _interrupt_child('list(socketkit.scan_iter("127.0.0.1", port, timeout=30))')


def test_ctrl_c_during_wait_for():
    _interrupt_child('socketkit.wait_for(["127.0.0.1:%d" % closed_port(), ("127.0.0.1", port)], timeout=60)')


def test_ctrl_c_during_tcping():
    _interrupt_child('socketkit.tcping("127.0.0.1", port, count=100, interval=1.0, timeout=30)')


def test_low_fd_limit_is_retry_later_not_a_port_state():
    """At a hard limit of 64 descriptors a concurrency of 1024 must still
    give right answers: EMFILE is "retry later", never "closed"/"error"."""
    code = textwrap.dedent(
        """
        import resource, socket, sys, json
        sys.path.insert(0, {here!r})
        from _probe_util import listeners
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        import socketkit
        with listeners(3) as ports:
            lo = min(ports) - 300
            r = socketkit.scan("127.0.0.1", [*ports, range(lo, lo + 1198)], concurrency=1024)
            n = len(set(ports) | set(range(lo, lo + 1198)))
            print(json.dumps({{"ports": sorted(ports), "open": r.open_ports(), "counts": r.counts, "n": n}}))
        """
    ).format(here=str(HERE))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["ports"]) <= set(out["open"])
    assert out["counts"].get("error", 0) == 0
    assert sum(out["counts"].values()) == out["n"]


def test_no_fd_leak_after_many_probes():
    with Server(lambda conn: None) as srv:
        port = srv.port
        socketkit.check("127.0.0.1", port)  # warm up lazily created state
        before = _fd_count()
        for _ in range(300):
            socketkit.check("127.0.0.1", port)
        socketkit.check_many([("127.0.0.1", port), ("127.0.0.1", closed_port())] * 500)
        socketkit.scan("127.0.0.1", "1-3000")
        deadline = time.monotonic() + 5
        while _fd_count() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _fd_count() <= before


def test_scan_iter_closed_from_another_thread():
    with full_backlog() as port:
        it = socketkit._probe_core._scan_iter("127.0.0.1", port, timeout=30, concurrency=1, rate=None)
        timer = threading.Timer(0.3, it.close)
        timer.start()
        start = time.monotonic()
        try:
            assert list(it) == []
        finally:
            timer.join()
        assert time.monotonic() - start < 5


def test_emfile_during_a_scan_is_retried():
    """Descriptors run out while the probes run (another part of the program
    holds them): the workers wait and retry, and every answer is right."""
    code = textwrap.dedent(
        """
        import json, os, resource, socket, sys, threading
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        import socketkit
        lst = socket.create_server(("127.0.0.1", 0), backlog=2048)
        port = lst.getsockname()[1]
        with socket.socket() as tmp:
            tmp.bind(("127.0.0.1", 0))
            closed = tmp.getsockname()[1]
        targets = [("127.0.0.1", port), ("127.0.0.1", closed)] * 300
        it = socketkit.check_iter(targets, concurrency=64, rate=1500)
        hog = []
        try:
            while True:
                hog.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        def release():
            for fd in hog:
                os.close(fd)
        timer = threading.Timer(0.3, release)
        timer.start()
        results = list(it)
        timer.join()
        lst.close()
        states = {}
        for r in results:
            key = (r.port == port, r.state)
            states[str(key)] = states.get(str(key), 0) + 1
        print(json.dumps({"states": states, "hogged": len(hog)}))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["hogged"] > 100
    assert out["states"] == {"(True, 'open')": 300, "(False, 'closed')": 300}, out
