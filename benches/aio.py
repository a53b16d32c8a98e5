"""socketkit.aio against asyncio streams and uvloop streams, in one run.

1. bridge: 1,000 concurrent awaits of a trivial tokio future, through
   socketkit's bridge (eventfd + batched completions on the loop's thread)
   and through pyo3-async-runtimes' ``tokio::future_into_py``: the
   measurement behind the design in ``socketkit/aio.py``.
2. clients: 1,000 concurrent 64-byte request/response clients in one event
   loop against ``TcpServer.echo()``: requests per second of socketkit.aio
   (on the default loop and on uvloop), asyncio streams and uvloop streams.
   Targets (issue 12): >= 1.5x asyncio streams, >= 1.0x uvloop streams.
3. scan: ``await aio.scan("127.0.0.1", "-")`` against the blocking
   ``socketkit.scan`` (target: within 10%). Run as root for a private
   network namespace, as benches/scan.py does.

    python benches/aio.py [--quick]

Build with ``maturin develop --release`` first. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvloop
from common import interleaved

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


def streams(addr: tuple[str, int], n: int, reqs: int, run=asyncio.run) -> float:
    async def main() -> float:
        conns = [await asyncio.open_connection(*addr) for _ in range(n)]

        async def one(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            for _ in range(reqs):
                w.write(MSG)
                await r.readexactly(len(MSG))

        t = time.perf_counter()
        await asyncio.gather(*[one(r, w) for r, w in conns])
        rate = n * reqs / (time.perf_counter() - t)
        for _, w in conns:
            w.close()
        return rate

    return run(main())


def sk_clients(addr: tuple[str, int], n: int, reqs: int, run=asyncio.run) -> float:
    async def main() -> float:
        cs = [await aio.AsyncTcpClient.connect(addr) for _ in range(n)]

        async def one(c: aio.AsyncTcpClient) -> None:
            for _ in range(reqs):
                await c.request(MSG, exact=len(MSG))

        t = time.perf_counter()
        await asyncio.gather(*[one(c) for c in cs])
        rate = n * reqs / (time.perf_counter() - t)
        for c in cs:
            c.close()
        return rate

    return run(main())


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
    a = ap.parse_args()
    rounds = 3 if a.quick else 7
    n, reqs = 1000, (20 if a.quick else 100)
    print("## bridge: 1,000 concurrent awaits (awaits/s, median)")
    # pyo3-async-runtimes is compiled in only for this comparison.
    kinds = ["socketkit"]
    if hasattr(_aio_core, "_aio_bench_pyo3_async"):
        kinds.append("pyo3-async-runtimes")
    else:
        print("- (pyo3-async-runtimes: build with `maturin develop --release --features bench-pyo3-async`)")
    b = interleaved(rounds, {k: (lambda k=k: bridge(k, 1000, 5)) for k in kinds})
    for k, v in b.items():
        print(f"- {k}: {v:,.0f}")
    if len(b) == 2:
        print(f"- ratio: {b['socketkit'] / b['pyo3-async-runtimes']:.2f}x")
    with socketkit.TcpServer.echo() as srv:
        addr = srv.address
        r = interleaved(
            rounds,
            {
                "socketkit.aio (asyncio loop)": lambda: sk_clients(addr, n, reqs),
                "socketkit.aio (uvloop)": lambda: sk_clients(addr, n, reqs, uvloop.run),
                "asyncio streams": lambda: streams(addr, n, reqs),
                "uvloop streams": lambda: streams(addr, n, reqs, uvloop.run),
            },
        )
    print(f"\n## clients: {n} concurrent 64-byte request/response (requests/s, median)")
    for k, v in r.items():
        print(f"- {k}: {v:,.0f}")
    best = max(r["socketkit.aio (asyncio loop)"], r["socketkit.aio (uvloop)"])
    print(
        f"- socketkit.aio / asyncio streams: {r['socketkit.aio (asyncio loop)'] / r['asyncio streams']:.2f}x"
    )
    print(f"- socketkit.aio / uvloop streams: {best / r['uvloop streams']:.2f}x")
    s = scans(rounds)
    print("\n## scan: 127.0.0.1, all 65,535 ports (seconds, median)")
    for k, v in s.items():
        print(f"- {k}: {v:.3f}")
    print(f"- await / blocking: {s['await aio.scan'] / s['blocking scan']:.2f}x")


if __name__ == "__main__":
    main()
