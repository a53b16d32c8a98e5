"""Full 65,535-port connect scan of 127.0.0.1: socketkit against the stdlib
(sequential, ThreadPoolExecutor(256), asyncio with a semaphore of 1000) and
``nmap -sT -T4 -p- -n``, all in one run; then tcping latency against a
back-to-back stdlib ``socket()`` + ``connect()`` loop at the same interval.

Run as root so the bench gets a private network namespace (only its own 5
listeners exist there, nothing else on the machine is disturbed):

    sudo python benches/scan.py [--quick]

Without root it runs on the shared loopback and says so. Prints a Markdown
table. A measurement, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import ctypes
import fcntl
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
PORTS = range(1, 65536)
TIMEOUT = 0.5


def private_netns() -> bool:
    """Move this process into a new network namespace with ``lo`` up."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), 0x8913, ifr))[1]
        fcntl.ioctl(s.fileno(), 0x8914, struct.pack("16sH14x", b"lo", flags | 1))
    return True


def start_listeners(n: int = 5) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1024)
        socks.append(s)
    return socks


def stdlib_probe(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(TIMEOUT)
        return s.connect_ex(("127.0.0.1", port)) == 0


def scan_sequential() -> set[int]:
    return {p for p in PORTS if stdlib_probe(p)}


def scan_threadpool() -> set[int]:
    with concurrent.futures.ThreadPoolExecutor(256) as ex:
        return {p for p, ok in zip(PORTS, ex.map(stdlib_probe, PORTS), strict=True) if ok}


def scan_asyncio() -> set[int]:
    async def probe(sem: asyncio.Semaphore, port: int) -> int | None:
        async with sem:
            try:
                _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
            except (TimeoutError, OSError):
                return None
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()
            return port

    async def main() -> set[int]:
        sem = asyncio.Semaphore(1000)
        found = await asyncio.gather(*(probe(sem, p) for p in PORTS))
        return {p for p in found if p is not None}

    return asyncio.run(main())


def scan_nmap() -> set[int] | None:
    if not shutil.which("nmap"):
        return None
    out = subprocess.run(
        ["nmap", "-sT", "-T4", "-p-", "-n", "-oG", "-", "127.0.0.1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {int(m.group(1)) for m in re.finditer(r"(\d+)/open/tcp", out)}


SOCKETKIT_CHILD = """
import json, resource, sys, time
import socketkit
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
r = socketkit.scan("127.0.0.1", "1-65535", timeout=%r)
el = time.perf_counter() - t
print(json.dumps({"elapsed": el, "core": r.elapsed, "open": r.open_ports(), "base_kb": base,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def scan_socketkit_child() -> dict:
    """One scan in a fresh interpreter, for its peak RSS."""
    out = subprocess.run(
        [sys.executable, "-c", SOCKETKIT_CHILD % TIMEOUT], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def timed(fn):
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


def tcping_compare(count: int, interval: float) -> tuple[list[float], list[float]]:
    import socketkit

    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1024)
    port = lst.getsockname()[1]
    stop = threading.Event()

    def acceptor():
        lst.settimeout(0.1)
        while not stop.is_set():
            try:
                c, _ = lst.accept()
                c.close()
            except TimeoutError:
                continue
            except OSError:
                return

    th = threading.Thread(target=acceptor, daemon=True)
    th.start()

    # Interleaved, one ping of each per interval, in alternating order:
    # run one after the other, drift between the two halves (this VM's
    # neighbours) moved the ratio by 0.8x-1.3x from run to run.
    def sk_once() -> None:
        sk.extend(socketkit.tcping("127.0.0.1", port, count=1, timeout=1.0).rtts)

    def std_once() -> None:
        s = socket.socket()
        t0 = time.perf_counter()
        s.connect(("127.0.0.1", port))
        std.append((time.perf_counter() - t0) * 1000)
        s.close()

    sk: list[float] = []
    std: list[float] = []
    try:
        nxt = time.perf_counter()
        for i in range(count):
            for once in (sk_once, std_once) if i % 2 else (std_once, sk_once):
                once()
            nxt += interval
            time.sleep(max(0.0, nxt - time.perf_counter()))
    finally:
        stop.set()
        th.join()
        lst.close()
    return sk, std


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the slow stdlib variants")
    ap.add_argument("--runs", type=int, default=3, help="socketkit runs (best and median reported)")
    ap.add_argument("--pings", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.01)
    args = ap.parse_args()

    isolated = private_netns()
    socks = start_listeners()
    expected = {s.getsockname()[1] for s in socks}
    print(
        f"# scan bench: {os.cpu_count()} CPUs, "
        f"{'private network namespace' if isolated else 'SHARED loopback (not root)'}, "
        f"{len(expected)} listeners, connect timeout {TIMEOUT} s\n"
    )

    rows: list[tuple[str, float | None, str]] = []
    sk_runs = [scan_socketkit_child() for _ in range(args.runs)]
    sk_times = sorted(r["elapsed"] for r in sk_runs)
    sk_best = sk_times[0]
    sk_found = set(sk_runs[0]["open"])
    rows.append(
        (
            f"socketkit.scan (best of {args.runs}; median {statistics.median(sk_times):.3f} s)",
            sk_best,
            "ok" if sk_found == expected else f"found {sorted(sk_found)}",
        )
    )
    variants = [("stdlib sequential connect_ex", scan_sequential)]
    if not args.quick:
        variants += [
            ("stdlib ThreadPoolExecutor(256)", scan_threadpool),
            ("stdlib asyncio, Semaphore(1000)", scan_asyncio),
        ]
    variants.append(("nmap -sT -T4 -p- -n", scan_nmap))
    for name, fn in variants:
        el, found = timed(fn)
        if found is None:
            rows.append((name, None, "not installed"))
            continue
        note = "ok"
        if found != expected:
            parts = []
            if expected - found:
                parts.append(f"missed {sorted(expected - found)}")
            if found - expected:
                parts.append(
                    f"{len(found - expected)} self-connection(s) reported open: {sorted(found - expected)}"
                )
            note = "; ".join(parts)
        rows.append((name, el, note))

    print("| full scan of 127.0.0.1 (65,535 ports) | time (s) | vs socketkit | open ports found |")
    print("| --- | ---: | ---: | --- |")
    for name, el, note in rows:
        if el is None:
            print(f"| {name} | - | - | {note} |")
        else:
            print(f"| {name} | {el:.3f} | {el / sk_best:.1f}x | {note} |")
    peak = max(r["peak_kb"] for r in sk_runs)
    base = sk_runs[0]["base_kb"]
    print(
        f"\nsocketkit peak RSS: {peak / 1024:.1f} MiB for the whole interpreter "
        f"({base / 1024:.1f} MiB after `import socketkit`, +{(peak - base) / 1024:.1f} MiB for the scan "
        "and its 65,535 result objects)\n"
    )

    sk, std = tcping_compare(args.pings, args.interval)
    head = f"tcping 127.0.0.1, {args.pings} pings every {args.interval * 1000:.0f} ms"
    print(f"| {head} | median (ms) | mean (ms) | p95 (ms) |")
    print("| --- | ---: | ---: | ---: |")
    for name, v in (("socketkit.tcping", sk), ("stdlib socket()+connect() loop", std)):
        q = statistics.quantiles(v, n=20)[-1]
        print(f"| {name} | {statistics.median(v):.4f} | {statistics.fmean(v):.4f} | {q:.4f} |")
    ratio = statistics.median(sk) / statistics.median(std)
    print(f"\nsocketkit / stdlib median connect latency: {ratio:.2f}")
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
