"""Issue 15 items 9 and 10: Ctrl-C during a big run of closed ports, and
``rate=`` against nmap's ``--max-rate``.

Item 9: a run of a million refused connects ignored Ctrl-C until its end
(a worker only looked at the cancel flag when it had a connect in flight,
and refused loopback connects never are), and the planning, job layout
and result wrapping of a million targets ran deaf to it too. The contract
(DESIGN.md, HELPERS.md) is 200 ms; the bound here is 1 s for a loaded
2-core machine, against the 2.4-25 s it took before.

The runs probe port 1 of 127.0.0.1, where nothing listens, or scan inside a
fresh network namespace, so no other server on this machine sees them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from _child import can_make_netns, netns, start

import socketkit

# The child prints READY once its run is under way, then the SIGINT comes;
# it reports the wall-clock time it caught KeyboardInterrupt.
CHILD = """
import sys, time, socketkit
started = False
def progress(done, total):
    global started
    if done and not started:
        started = True
        print("READY", flush=True)
try:
    {block}
except KeyboardInterrupt:
    print("INTERRUPTED", time.time(), flush=True)
    sys.exit(0)
print("RETURNED", flush=True)
"""

MILLION = '[("127.0.0.1", 1)] * 1_000_000'

# The issue's own case: 16 hosts x every port, all closed (an empty namespace).
SCAN = 'socketkit.scan("127.0.0.0/28", "-", progress=progress)'

ITERATE = """
    for r in {it}:
        progress(1, 1)
"""

#: SIGINT to KeyboardInterrupt, at most (the contract is 0.2 s).
BOUND = 1.0


def _interrupt(proc: subprocess.Popen[str]) -> tuple[float, str, str]:
    """SIGINT the child (it printed READY: its run is under way); how long
    until it caught KeyboardInterrupt, and its output."""
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return float("inf"), out, err
    words = out.split()
    if "INTERRUPTED" not in words:
        return float("inf"), out, err
    return float(words[words.index("INTERRUPTED") + 1]) - sent, out, err


def _run(block: str, prefix: list[str] | None = None) -> None:
    proc = start(CHILD.format(block=block), prefix)
    took, out, err = _interrupt(proc)
    assert took < BOUND, (took, out, err)
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err, err


def test_ctrl_c_stops_check_many_of_a_million_refused_ports() -> None:
    _run(f"socketkit.check_many({MILLION}, progress=progress)")


def test_ctrl_c_stops_check_iter_of_a_million_refused_ports() -> None:
    _run(ITERATE.format(it=f"socketkit.check_iter({MILLION})"))


needs_netns = pytest.mark.skipif(
    not can_make_netns(), reason="needs root and iproute2 for a network namespace"
)


@needs_netns
def test_ctrl_c_stops_a_full_scan_of_sixteen_closed_hosts() -> None:
    with netns() as prefix:
        _run(SCAN, prefix)


@needs_netns
def test_ctrl_c_stops_scan_iter_of_sixteen_closed_hosts() -> None:
    with netns() as prefix:
        _run(ITERATE.format(it='socketkit.scan_iter("127.0.0.0/28", "-")'), prefix)


CLI_CHILD = """
import sys, time
from socketkit import cli
print("READY", flush=True)
rc = cli.main(["scan", "127.0.0.0/28", "-p-", "--open"])
print("EXIT", rc, time.time(), flush=True)
"""


@needs_netns
def test_ctrl_c_stops_the_scan_command() -> None:
    # `socketkit scan 127.0.0.0/28 -p- --open`, Ctrl-C after 1 s: back at
    # the prompt after 5.7-6.0 s before the fix.
    with netns() as prefix:
        proc = start(CLI_CHILD, prefix)
        time.sleep(1.0)  # into the scan, as a user would be; not a sync point
        sent = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    words = out.split()
    assert words[:2] == ["EXIT", "130"], (out, err)
    assert float(words[2]) - sent < BOUND, (float(words[2]) - sent, out, err)
    assert "interrupted" in err and "Traceback" not in err, err


# --- rate= (item 10) -----------------------------------------------------------

#: 8,192 refused connects: port 1 of 127.0.0.0/19 (all of 127/8 is loopback).
RATE_HOSTS = "127.0.0.0/19"
#: Well under what even a debug build does on loopback (~35,000/s), and
#: where the old limiter could not reach 67%: every wait it asked for
#: overslept by at least the 50 us timer slack, and the slot was lost.
RATE = 10000.0


def test_rate_runs_close_to_the_cap_and_never_above_it() -> None:
    # Before the fix a worker that woke late lost the slots it missed:
    # rate=2000 ran at 1,500/s and rate=10000 at 4,400/s on a machine that
    # does 36,000-89,000/s unlimited. nmap's --max-rate is what users expect.
    t0 = time.perf_counter()
    report = socketkit.scan(RATE_HOSTS, 1, rate=RATE, timeout=5.0)
    elapsed = time.perf_counter() - t0
    n = len(report)
    assert n == 8192 and report.counts == {"closed": n}, report.counts
    # Firm: at most the rate plus one catch-up burst (50 ms of slots).
    burst = RATE * 0.05 + 1
    assert elapsed >= (n - burst) / RATE, elapsed
    # Generous (a loaded machine may not keep up): not far under the cap.
    # One retry: a stall of the whole machine is not what this tests.
    if n / elapsed < 0.75 * RATE:
        t0 = time.perf_counter()
        socketkit.scan(RATE_HOSTS, 1, rate=RATE, timeout=5.0)
        elapsed = min(elapsed, time.perf_counter() - t0)
    assert n / elapsed >= 0.75 * RATE, f"{n / elapsed:.0f}/s for rate={RATE:.0f}"


def test_rate_holds_across_workers_and_iterators() -> None:
    # The same cap from scan_iter (its own stream, same workers): the
    # firm side only, early results included.
    t0 = time.perf_counter()
    n = sum(1 for _ in socketkit.scan_iter(RATE_HOSTS, 1, rate=RATE, timeout=5.0))
    elapsed = time.perf_counter() - t0
    assert n == 8192
    assert elapsed >= (n - RATE * 0.05 - 1) / RATE, elapsed


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([os.path.abspath(__file__), "-q"]))
