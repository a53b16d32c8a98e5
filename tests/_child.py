"""Run a Python child process that signals readiness, then interrupt it.

Used by the Ctrl-C tests: the child prints READY right before it blocks,
the parent sends SIGINT and measures how long the child takes to notice.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    seconds_to_exit: float


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError(f"child printed nothing within {timeout} s")
        return proc.stdout.readline()
    finally:
        sel.close()


def start(code: str, prefix: list[str] | None = None) -> subprocess.Popen[str]:
    """Start `python -c code` (optionally under a prefix such as
    `ip netns exec NAME`); returns once it printed READY."""
    cmd = [*(prefix or []), sys.executable, "-u", "-c", code]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc, 30.0)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    if line.strip() != "READY":
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"child did not get ready: {line!r} {out!r} {err!r}")
    return proc


def interrupt(proc: subprocess.Popen[str], settle: float = 0.3, limit: float = 10.0) -> Outcome:
    """Let the child block for `settle` s, send SIGINT, wait for it to exit."""
    time.sleep(settle)  # let the child enter its blocking call; not a sync point
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return Outcome(proc.returncode, out, err, float("inf"))
    return Outcome(proc.returncode, out, err, time.monotonic() - t0)


def can_make_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@contextmanager
def netns(hosts: str | None = None, resolv: str | None = None) -> Iterator[list[str]]:
    """A private network namespace with only `lo` (up), and optionally its
    own /etc/hosts and /etc/resolv.conf (`ip netns exec` bind-mounts the
    files of /etc/netns/NAME). Yields the command prefix to run in it."""
    name = f"sk{uuid.uuid4().hex[:10]}"
    etc = f"/etc/netns/{name}"
    os.makedirs(etc)
    try:
        if hosts is not None:
            with open(f"{etc}/hosts", "w") as f:
                f.write(hosts)
        if resolv is not None:
            with open(f"{etc}/resolv.conf", "w") as f:
                f.write(resolv)
        subprocess.run(["ip", "netns", "add", name], check=True)
        try:
            subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
            yield ["ip", "netns", "exec", name]
        finally:
            subprocess.run(["ip", "netns", "del", name], check=False)
    finally:
        shutil.rmtree(etc, ignore_errors=True)
