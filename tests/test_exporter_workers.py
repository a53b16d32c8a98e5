"""socketkit exporter --workers: every worker answers /probe on the one
port, /metrics counts every worker's probes, SIGHUP reloads every worker
(a broken config keeps the old one in each), SIGTERM leaves no worker
behind, and workers stop by themselves when their parent is killed.

A worker is singled out by stopping (SIGSTOP) the others: a stopped
process does not accept, so the one left running must answer."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")
pytest.importorskip("yaml")

from test_exporter import BLACKBOX_TCP, _started, get, probe, samples

from socketkit.exporter import serve

WORKERS = 3


def family(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, kids)]


def state(pid: int) -> str:
    """/proc's process state letter ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


def stopped(pid: int) -> bool:
    """Every thread of the process stopped."""
    states = []
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            states.append((t / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except FileNotFoundError:  # a thread that has just ended
            pass
    return all(s in ("t", "T") for s in states)


def alive(pid: int) -> bool:
    """Running (a zombie nobody has reaped yet counts as gone)."""
    return state(pid) not in ("", "Z")


@contextmanager
def only(pids: list[int], keep: int) -> Iterator[None]:
    """Every process of ``pids`` but ``keep`` stopped meanwhile."""
    others = [p for p in pids if p != keep]
    for p in others:
        os.kill(p, signal.SIGSTOP)
    # The stop lands asynchronously, thread by thread: a process's accept
    # thread still running could accept the next connection and then stop
    # holding it (its main thread stopped says nothing of that one).
    deadline = time.monotonic() + 10
    while not all(stopped(p) for p in others):
        assert time.monotonic() < deadline, "SIGSTOP never took"
        time.sleep(0.01)
    try:
        yield
    finally:
        for p in others:
            os.kill(p, signal.SIGCONT)


@contextmanager
def cli(cfg: Path, workers: int = WORKERS) -> Iterator[tuple[subprocess.Popen[str], str, list[int]]]:
    proc, hello = _started(["--config", str(cfg), "--listen", "127.0.0.1:0", "--workers", str(workers)])
    try:
        pids = family(proc.pid)
        yield proc, f"http://{hello['listening']}", pids
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)


def test_every_worker_answers_and_metrics_count_them_all(tmp_path: Path) -> None:
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text(BLACKBOX_TCP)
    with cli(cfg) as (_proc, base, pids), ThreadPoolExecutor(40) as pool:
        assert len(pids) == WORKERS
        for pid in pids:
            with only(pids, pid):
                assert probe(base, "127.0.0.1:1", "tcp_connect")[0] == 200
        codes = list(pool.map(lambda _: probe(base, "127.0.0.1:1", "tcp_connect")[0], range(120)))
        assert codes == [200] * 120
        key = 'socketkit_exporter_probes_total{module="tcp_connect",result="failure"}'
        for pid in pids:  # each worker's /metrics sees the others' probes
            with only(pids, pid):
                assert samples(get(f"{base}/metrics")[1])[key] == WORKERS + 120
                assert get(f"{base}/probe?module=tcp_connect")[0] == 400
        assert samples(get(f"{base}/metrics")[1])["socketkit_exporter_bad_requests_total"] == WORKERS


def eventually_everywhere(base: str, pids: list[int], module: str, code: int) -> None:
    for pid in pids:
        with only(pids, pid):
            deadline = time.monotonic() + 10
            while probe(base, "127.0.0.1:1", module)[0] != code:
                assert time.monotonic() < deadline, f"process {pid}: {module} never {code}"
                time.sleep(0.05)


def test_sighup_reloads_every_worker_and_a_broken_config_keeps_the_old_one(tmp_path: Path) -> None:
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text(BLACKBOX_TCP)
    with cli(cfg) as (proc, base, pids):
        eventually_everywhere(base, pids, "added", 400)
        cfg.write_text(BLACKBOX_TCP + "  added:\n    prober: tcp\n")
        proc.send_signal(signal.SIGHUP)
        eventually_everywhere(base, pids, "added", 200)
        cfg.write_text("modules:\n  broken: {prober: tcp, timeout: soon}\n")
        proc.send_signal(signal.SIGHUP)
        for pid in pids:
            with only(pids, pid):
                deadline = time.monotonic() + 10
                key = "socketkit_exporter_config_last_reload_successful"
                while samples(get(f"{base}/metrics")[1])[key] != 0.0:
                    assert time.monotonic() < deadline, f"worker {pid} never tried the broken config"
                    time.sleep(0.05)
                assert probe(base, "127.0.0.1:1", "added")[0] == 200  # the old config is in force
                assert probe(base, "127.0.0.1:1", "broken")[0] == 400
        assert all(alive(p) for p in pids)


def test_workers_apply_the_text_the_parent_read_not_a_later_edit(tmp_path: Path) -> None:
    # The workers are stopped while the parent reloads and while the file
    # changes again: they must still apply what the parent read (a worker
    # reading the file itself would find the later, broken edit).
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text(BLACKBOX_TCP)
    with cli(cfg) as (proc, base, pids):
        parent = pids[0]
        with only(pids, parent):
            cfg.write_text(BLACKBOX_TCP + "  added:\n    prober: tcp\n")
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while probe(base, "127.0.0.1:1", "added")[0] != 200:
                assert time.monotonic() < deadline, "the parent never reloaded"
                time.sleep(0.05)
            cfg.write_text("modules:\n  broken: {prober: tcp, timeout: soon}\n")
        eventually_everywhere(base, pids, "added", 200)
        key = "socketkit_exporter_config_last_reload_successful"
        for pid in pids:
            with only(pids, pid):
                assert samples(get(f"{base}/metrics")[1])[key] == 1.0


def test_post_reload_to_one_worker_reloads_them_all(tmp_path: Path) -> None:
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text(BLACKBOX_TCP)
    with cli(cfg) as (_proc, base, pids):
        cfg.write_text(BLACKBOX_TCP + "  added:\n    prober: tcp\n")
        with only(pids, pids[-1]):
            req = urllib.request.Request(f"{base}/-/reload", method="POST")
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
        eventually_everywhere(base, pids, "added", 200)


def test_sigterm_leaves_no_worker_behind(tmp_path: Path) -> None:
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text(BLACKBOX_TCP)
    with cli(cfg) as (proc, base, pids):
        assert probe(base, "127.0.0.1:1", "tcp_connect")[0] == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
    assert not any(alive(p) for p in pids[1:])  # reaped by the parent, not left to init


def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text(BLACKBOX_TCP)
    with cli(cfg) as (proc, _base, pids):
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids[1:]):
            assert time.monotonic() < deadline, "a worker outlived its killed parent"
            time.sleep(0.05)


def held_connections(pid: int, port: int) -> int:
    """Established connections to ``port`` among the process's sockets."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == "01":
            inodes.add(f[9])
    fds = Path(f"/proc/{pid}/fd")
    held = 0
    for fd in fds.iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        held += link.startswith("socket:[") and link[8:-1] in inodes
    return held


def test_a_burst_of_keep_alive_connections_is_shared_out(tmp_path: Path) -> None:
    # Each keep-alive scraper stays with the worker that accepted it: with
    # workers racing for a burst, one took 37-49 of 50 (one core busy, the
    # other idle); the workers must share them.
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text(BLACKBOX_TCP)
    with cli(cfg, workers=2) as (_proc, base, pids):
        port = int(base.rsplit(":", 1)[1])
        socks = []
        try:
            for _ in range(40):  # a burst: all connect before any is answered
                s = socket.socket()
                s.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    s.connect(("127.0.0.1", port))
                socks.append(s)
            for s in socks:
                s.setblocking(True)
                s.settimeout(30)
                s.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
            for s in socks:  # every one accepted and answered
                assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
            held = [held_connections(pid, port) for pid in pids]
            assert sum(held) == 40 and min(held) >= 15, held
        finally:
            for s in socks:
                s.close()


def test_workers_below_one_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        serve(None, "127.0.0.1:0", workers=0)
    r = subprocess.run(
        [sys.executable, "-m", "socketkit", "exporter", "--listen", "127.0.0.1:0", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "--workers must be at least 1, got 0" in r.stderr
