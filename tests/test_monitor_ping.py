"""Continuous tcping (issue 13): tcping(count=None, deadline=, resolve_every=),
tcping_iter() yielding PingProbe, PingStats over time (uptime, downtime,
streaks, address changes), and the CLI's ping without -c, -D and
--failures-only."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _probe_util import listeners
from peers import closed_tcp_port as closed_port
from test_cli import CLI, run

import socketkit
from socketkit import PingProbe, PingStats


def test_tcping_iter_yields_typed_probes_with_their_start_times() -> None:
    assert "tcping_iter" in socketkit.__all__ and "PingProbe" in socketkit.__all__
    with listeners(1) as (port,):
        before = time.time()
        got = list(socketkit.tcping_iter("127.0.0.1", port, count=3, interval=0.05))
        after = time.time()
    assert [p.seq for p in got] == [1, 2, 3]
    assert all(isinstance(p, PingProbe) and p.ok and p.error is None for p in got)
    assert all(p.address == "127.0.0.1" and p.rtt_ms is not None and p.rtt_ms > 0 for p in got)
    times = [p.time for p in got]
    assert before <= times[0] <= times[1] <= times[2] <= after
    assert times[2] - times[0] >= 0.09  # start to start, an interval apart
    assert got[0].to_dict()["ok"] is True


def test_tcping_iter_by_default_runs_until_closed() -> None:
    with listeners(1) as (port,):
        it = socketkit.tcping_iter("127.0.0.1", port, interval=0.0)
        seqs = [next(it).seq for _ in range(50)]
        it.close()  # type: ignore[attr-defined]
    assert seqs == list(range(1, 51))
    assert list(it) == []


def test_arguments_are_checked_at_the_call() -> None:
    with pytest.raises(ValueError, match="resolve_every"):
        socketkit.tcping_iter("127.0.0.1:1", resolve_every=0)
    with pytest.raises(ValueError, match="deadline"):
        socketkit.tcping("127.0.0.1:1", deadline=-1)
    with pytest.raises(ValueError, match="count"):
        socketkit.tcping_iter("127.0.0.1:1", count=0)


def test_a_deadline_ends_a_continuous_run() -> None:
    with listeners(1) as (port,):
        start = time.monotonic()
        s = socketkit.tcping("127.0.0.1", port, count=None, interval=0.1, deadline=0.45)
        took = time.monotonic() - start
    assert s.sent == 5 and s.received == 5, s  # at 0, 0.1, 0.2, 0.3, 0.4
    assert 0.4 <= took < 2.0
    assert s.downtime_s == 0.0 and s.longest_down is None
    assert s.longest_up is not None and s.longest_up[2] == pytest.approx(s.uptime_s)


def test_statistics_at_100_percent_loss() -> None:
    s = socketkit.tcping("127.0.0.1", closed_port(), count=3, interval=0.05)
    assert (s.sent, s.received, s.loss_percent) == (3, 0, 100.0)
    assert s.min is None and s.avg is None
    assert s.uptime_s == 0.0 and s.longest_up is None
    assert s.downtime_s >= 0.1
    assert s.longest_down is not None
    start, end, seconds = s.longest_down
    assert start == s.probes[0].time and seconds == pytest.approx(end - start)
    d = s.to_dict()
    assert d["longest_up"] is None and d["longest_down"]["seconds"] > 0
    assert s.errors == ["Connection refused"] * 3


def _probe(seq: int, t: float, ok: bool, address: str | None = "10.0.0.1") -> PingProbe:
    return PingProbe(seq, t, "open" if ok else "closed", address, 1.0 if ok else None, None if ok else "x")


def test_streaks_uptime_and_address_changes_from_probes() -> None:
    ups = [True, True, False, False, False, True, True, True, True]
    probes = [_probe(i + 1, 100.0 + i, up) for i, up in enumerate(ups)]
    probes[6] = _probe(7, 106.0, True, "10.0.0.2")
    probes[7] = _probe(8, 107.0, True, "10.0.0.2")
    probes[8] = _probe(9, 108.0, True, "10.0.0.2")
    s = PingStats("h", "10.0.0.1", 80, [p.rtt_ms for p in probes], probes=probes, end=109.0)
    assert s.longest_down == (102.0, 105.0, 3.0)
    assert s.longest_up == (105.0, 109.0, 4.0)
    assert (s.uptime_s, s.downtime_s) == (6.0, 3.0)
    assert s.address_changes == [(106.0, "10.0.0.1", "10.0.0.2")]
    assert s.to_dict()["address_changes"] == [[106.0, "10.0.0.1", "10.0.0.2"]]
    # Stats made from rtts alone keep the old meaning and have no time.
    bare = PingStats("h", "10.0.0.1", 80, [1.0, None])
    assert (bare.uptime_s, bare.longest_up, bare.address_changes) == (0.0, None, [])


def test_resolve_every_keeps_pinging_a_name_that_stopped_resolving() -> None:
    # After N failures in a row the name is resolved again; a later
    # failure to resolve is a ping with state "error", not an exception.
    port = closed_port()
    s = socketkit.tcping("localhost", port, count=4, interval=0.0, resolve_every=1)
    assert s.sent == 4 and s.received == 0
    assert s.address == "127.0.0.1" and s.address_changes == []


# --- the CLI ------------------------------------------------------------------------


@contextmanager
def switchable_listener() -> Iterator[tuple[int, list[socket.socket]]]:
    """A port whose listener the test closes and opens again."""
    holder = [socket.create_server(("127.0.0.1", 0))]
    try:
        yield holder[0].getsockname()[1], holder
    finally:
        for s in holder:
            s.close()


def _readline(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the child stopped writing"
    return line


def test_continuous_ping_ended_by_sigint_prints_the_summary_and_exits_0() -> None:
    with listeners(1) as (port,):
        proc = subprocess.Popen(
            [*CLI, "ping", f"127.0.0.1:{port}", "-i", "0.02", "-D"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert "until Ctrl-C" in _readline(proc)
        for _ in range(3):
            assert re.match(r"^\[\d+\.\d{6}\] connected to 127\.0\.0\.1:\d+: seq=\d+", _readline(proc))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "tcping statistics" in out and "0.0% loss" in out
    assert "uptime" in out and "longest up" in out


def test_a_target_that_goes_down_and_up_exits_1_with_its_streaks() -> None:
    with switchable_listener() as (port, holder):
        proc = subprocess.Popen(
            [*CLI, "ping", f"127.0.0.1:{port}", "-i", "0.02", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        states = []

        def until(state: str, n: int) -> None:
            seen = 0
            while seen < n:
                doc = json.loads(_readline(proc))
                states.append(doc["state"])
                seen = seen + 1 if doc["state"] == state else 0

        until("open", 3)
        holder[0].close()
        until("closed", 3)
        holder[0] = socket.create_server(("127.0.0.1", port))
        until("open", 3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 1, err
    summary = json.loads(out.splitlines()[-1])["summary"]
    assert summary["received"] < summary["sent"]
    down = summary["longest_down"]
    assert down is not None and down["seconds"] > 0
    assert summary["downtime_s"] > 0 and summary["uptime_s"] > 0
    assert summary["longest_up"]["end"] <= down["start"] or summary["longest_up"]["start"] >= down["end"]


def test_failures_only_prints_only_lost_probes() -> None:
    with listeners(1) as (port,):
        r = run("ping", f"127.0.0.1:{port}", "-c", "3", "-i", "0", "--failures-only")
    assert r.returncode == 0 and "seq=" not in r.stdout
    assert "3 probes sent, 3 successful" in r.stdout
    r = run("ping", f"127.0.0.1:{closed_port()}", "-c", "2", "-i", "0", "--failures-only", "--deadline", "5")
    assert r.returncode == 1
    assert sum("seq=" in line for line in r.stdout.splitlines()) == 2
    assert "longest down" in r.stdout


def test_ctrl_c_ends_a_continuous_tcping_with_the_stats_so_far() -> None:
    import _child

    with socket.create_server(("127.0.0.1", 0), backlog=4096) as srv:
        port = srv.getsockname()[1]
        proc = _child.start(
            f"""
import socketkit
print("READY", flush=True)
s = socketkit.tcping("127.0.0.1", {port}, count=None, interval=0.01)
print("STATS", s.sent, s.received, s.longest_up is not None)
"""
        )
        outcome = _child.interrupt(proc)
    assert outcome.returncode == 0, outcome
    (line,) = [x for x in outcome.stdout.splitlines() if x.startswith("STATS")]
    _, sent, received, streak = line.split()
    assert int(sent) >= 1 and sent == received and streak == "True", line
