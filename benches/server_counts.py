"""Per-request counts for one server of benches/server.py (issue 16): server
CPU, context switches and syscalls per request, read with `perf stat` on
the server process. Wall-clock figures swing 3-10x on a shared machine;
these counts move far less, so A/B comparisons use them.

    python benches/server_counts.py sk-handler              # 50 conns, loadgen
    python benches/server_counts.py socketserver --conns 50
    python benches/server_counts.py sk-echo --latency       # 1 conn, round trips

Needs `perf` with tracepoints (raw_syscalls, syscalls:sys_enter_*).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import build_peers  # noqa: E402

import server as S  # noqa: E402

T = TypeVar("T")

EVENTS = [
    "task-clock",
    "context-switches",
    "raw_syscalls:sys_enter",
    "syscalls:sys_enter_futex",
    "syscalls:sys_enter_poll",
    "syscalls:sys_enter_recvfrom",
    "syscalls:sys_enter_sendto",
    "syscalls:sys_enter_epoll_wait",
]


def counted(pid: int, run: Callable[[], T]) -> tuple[T, dict[str, float]]:
    """run() while perf stat counts the process `pid`; (its result, counts)."""
    with tempfile.NamedTemporaryFile("r", suffix=".perf") as out:
        mon = subprocess.Popen(
            ["perf", "stat", "-x,", "-e", ",".join(EVENTS), "-p", str(pid), "-o", out.name]
        )
        time.sleep(0.3)  # perf attached
        try:
            result = run()
        finally:
            mon.send_signal(2)
            mon.wait()
        counts = {}
        for line in out:
            p = line.strip().split(",")
            if len(p) > 3 and p[0][:1].isdigit():
                counts[p[2]] = float(p[0])
    return result, counts


def show(name: str, per: str, n: int, counts: dict[str, float]) -> None:
    parts = []
    for ev, v in counts.items():
        label = ev.replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "syscalls")
        if ev == "task-clock":  # milliseconds
            parts.append(f"CPU {v * 1000 / n:.2f} us")
        else:
            parts.append(f"{label} {v / n:.3f}")
    print(f"{name}: per {per}: " + ", ".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "kind", help="a server kind of benches/server.py (sk-handler, socketserver, sk-echo, rust-std, ...)"
    )
    ap.add_argument("--conns", type=int, default=S.CONNS)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--latency", action="store_true", help="one connection's round trips instead of loadgen")
    ap.add_argument("--round-trips", type=int, default=20000)
    a = ap.parse_args()
    bins = build_peers()
    with S.server(a.kind) as (proc, port):
        if a.latency:
            S.round_trip_us(port, 2000)
            us, counts = counted(proc.pid, lambda: S.round_trip_us(port, a.round_trips))
            print(f"{a.kind}: {us:.1f} us per round trip")
            show(a.kind, "round trip", a.round_trips, counts)
            return
        S.loadgen(port, 0.3)
        cmd = [str(bins / "loadgen"), "127.0.0.1", str(port), str(a.conns), str(a.seconds), str(S.SIZE)]
        out, counts = counted(
            proc.pid, lambda: subprocess.run(cmd, check=True, capture_output=True, text=True)
        )
        rate, total = float(out.stdout.split()[0]), int(out.stdout.split()[1])
        print(f"{a.kind}: {rate:,.0f} req/s ({a.conns} conns)")
        show(a.kind, "request", total, counts)


if __name__ == "__main__":
    main()
