"""socketkit.aio against asyncio streams and uvloop streams, in one run.

1. bridge: 1,000 concurrent awaits of a trivial tokio future, through
   socketkit's bridge (eventfd + batched completions on the loop's thread)
   and through pyo3-async-runtimes' ``tokio::future_into_py``: the
   measurement behind the design in ``socketkit/aio.py``.
2. clients: 1,000 concurrent 64-byte request/response clients in one event
   loop against ``TcpServer.echo()``: requests per second of socketkit.aio
   (on the default loop and on uvloop), asyncio streams and uvloop streams.
   Targets (issue 12): >= 1.5x asyncio streams, >= 1.0x uvloop streams.
   The echo server runs in a child process (``--in-process-server``: in
   this one, as before), so the clients' process holds only the clients;
   each run starts after a ``gc.collect()``, and each row gives the median
   with the spread of its rounds and the CPU time of the event loop's
   thread per request, which the machine's noise moves far less than the
   rate (it is what one loop thread can do on one core).

   Why asyncio streams moved 48k-99k requests/s between runs: its
   StreamReader reads with ``sock.recv(262144)``, a 256 KiB buffer shrunk
   to the 64 bytes received. When no free chunk of the heap is that big,
   glibc takes it from the heap's top, and the shrink leaves more than
   its trim threshold (128 KiB) free there, so every read grows the heap
   and gives it back (brk twice, page faults: ~2 per request, 20 us of
   the loop's CPU per request instead of 9.5). Whether a process falls
   into that depends on its allocation history, so it changed from run to
   run. The bench pads the heap's top by 1 MiB (``mallopt(M_TOP_PAD)``, as
   ``MALLOC_TOP_PAD_`` does) for every contender: asyncio streams then
   runs at its steady rate every time; ``--glibc-default-heap`` measures
   without it. socketkit.aio and uvloop read into buffers they keep.
3. scan: ``await aio.scan("127.0.0.1", "-")`` against the blocking
   ``socketkit.scan`` (target: within 10%). Run as root for a private
   network namespace, as benches/scan.py does.

    python benches/aio.py [--quick]

Build with ``maturin develop --release`` first. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop
from common import child_server, interleaved

import socketkit
from socketkit import _aio_core, aio

MSG = b"x" * 63 + b"\n"


def bridge(kind: str, n: int, rounds: int) -> float:
    fn = _aio_core._aio_bench_bridge if kind == "socketkit" else _aio_core._aio_bench_pyo3_async

    async def main() -> float:
        await fn(b"warm")
        t = time.perf_counter()
        for _ in range(rounds):
            await asyncio.gather(*[fn(MSG) for _ in range(n)])
        return n * rounds / (time.perf_counter() - t)

    return asyncio.run(main())


#: (requests/s, CPU microseconds of the loop's thread per request)
Sample = tuple[float, float]


def streams(addr: tuple[str, int], n: int, reqs: int, run=asyncio.run) -> Sample:
    async def main() -> Sample:
        conns = [await asyncio.open_connection(*addr) for _ in range(n)]

        async def one(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            for _ in range(reqs):
                w.write(MSG)
                await r.readexactly(len(MSG))

        gc.collect()
        t, cpu = time.perf_counter(), time.thread_time()
        await asyncio.gather(*[one(r, w) for r, w in conns])
        cpu, t = time.thread_time() - cpu, time.perf_counter() - t
        for _, w in conns:
            w.close()
        return n * reqs / t, cpu / (n * reqs) * 1e6

    return run(main())


def sk_clients(addr: tuple[str, int], n: int, reqs: int, run=asyncio.run) -> Sample:
    async def main() -> Sample:
        cs = [await aio.AsyncTcpClient.connect(addr) for _ in range(n)]

        async def one(c: aio.AsyncTcpClient) -> None:
            for _ in range(reqs):
                await c.request(MSG, exact=len(MSG))

        gc.collect()
        t, cpu = time.perf_counter(), time.thread_time()
        await asyncio.gather(*[one(c) for c in cs])
        cpu, t = time.thread_time() - cpu, time.perf_counter() - t
        for c in cs:
            c.close()
        return n * reqs / t, cpu / (n * reqs) * 1e6

    return run(main())


def rounds(repeats: int, fns: dict[str, Callable[[], Sample]]) -> dict[str, list[Sample]]:
    """Every sample of each function, the functions taking turns within
    each round (as ``common.interleaved``), for the spread as well as
    the median."""
    samples: dict[str, list[Sample]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(fn())
    return samples


def pad_heap_top() -> bool:
    """``mallopt(M_TOP_PAD, 1 MiB)``: see the module docstring."""
    try:
        return bool(ctypes.CDLL(None).mallopt(-2, 1 << 20))  # M_TOP_PAD
    except (OSError, AttributeError):  # not glibc
        return False


@contextmanager
def echo_server(in_process: bool) -> Iterator[tuple[str, int]]:
    if in_process:
        with socketkit.TcpServer.echo() as srv:
            yield srv.address
        return
    with child_server([sys.executable, str(Path(__file__).resolve()), "--serve"]) as (_, port):
        yield ("127.0.0.1", port)


def serve() -> None:
    """The child process: the same ``TcpServer.echo()``, until stdin closes."""
    with socketkit.TcpServer.echo() as srv:
        print(srv.address[1], flush=True)
        sys.stdin.read()


def scans(rounds: int) -> dict[str, float]:
    def blocking() -> float:
        t = time.perf_counter()
        socketkit.scan("127.0.0.1", "-")
        return time.perf_counter() - t

    def awaited() -> float:
        async def main() -> float:
            t = time.perf_counter()
            await aio.scan("127.0.0.1", "-")
            return time.perf_counter() - t

        return asyncio.run(main())

    return interleaved(rounds, {"blocking scan": blocking, "await aio.scan": awaited})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--in-process-server", action="store_true", help="the echo server in this process")
    ap.add_argument("-v", "--verbose", action="store_true", help="every round's figures")
    ap.add_argument(
        "--glibc-default-heap", action="store_true", help="no heap top padding (see the docstring)"
    )
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        return serve()
    padded = not a.glibc_default_heap and pad_heap_top()
    repeats = 3 if a.quick else 7
    n, reqs = 1000, (20 if a.quick else 100)
    print("## bridge: 1,000 concurrent awaits (awaits/s, median)")
    # pyo3-async-runtimes is compiled in only for this comparison.
    kinds = ["socketkit"]
    if hasattr(_aio_core, "_aio_bench_pyo3_async"):
        kinds.append("pyo3-async-runtimes")
    else:
        print("- (pyo3-async-runtimes: build with `maturin develop --release --features bench-pyo3-async`)")
    b = interleaved(repeats, {k: (lambda k=k: bridge(k, 1000, 5)) for k in kinds})
    for k, v in b.items():
        print(f"- {k}: {v:,.0f}")
    if len(b) == 2:
        print(f"- ratio: {b['socketkit'] / b['pyo3-async-runtimes']:.2f}x")
    with echo_server(a.in_process_server) as addr:
        got = rounds(
            repeats,
            {
                "socketkit.aio (asyncio loop)": lambda: sk_clients(addr, n, reqs),
                "socketkit.aio (uvloop)": lambda: sk_clients(addr, n, reqs, uvloop.run),
                "asyncio streams": lambda: streams(addr, n, reqs),
                "uvloop streams": lambda: streams(addr, n, reqs, uvloop.run),
            },
        )
    where = "this process" if a.in_process_server else "a child process"
    print(f"\n## clients: {n} concurrent 64-byte request/response, echo server in {where}")
    heap = "heap top padded by 1 MiB" if padded else "glibc's default heap trimming"
    print(f"(requests/s, median [min-max]; CPU of the loop's thread per request, median; {heap})")
    r = {k: statistics.median(rate for rate, _ in v) for k, v in got.items()}
    for k, v in got.items():
        rates = [rate for rate, _ in v]
        cpu = statistics.median(us for _, us in v)
        print(f"- {k}: {r[k]:,.0f} [{min(rates):,.0f}-{max(rates):,.0f}]; {cpu:.2f} us")
        if a.verbose:
            print("  rounds:", ", ".join(f"{rate:,.0f} ({us:.2f} us)" for rate, us in v))
    best = max(r["socketkit.aio (asyncio loop)"], r["socketkit.aio (uvloop)"])
    print(
        f"- socketkit.aio / asyncio streams: {r['socketkit.aio (asyncio loop)'] / r['asyncio streams']:.2f}x"
    )
    print(f"- socketkit.aio / uvloop streams: {best / r['uvloop streams']:.2f}x")
    s = scans(repeats)
    print("\n## scan: 127.0.0.1, all 65,535 ports (seconds, median)")
    for k, v in s.items():
        print(f"- {k}: {v:.3f}")
    print(f"- await / blocking: {s['await aio.scan'] / s['blocking scan']:.2f}x")


if __name__ == "__main__":
    main()
