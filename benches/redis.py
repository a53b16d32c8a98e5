"""redis-benchmark as an independent load generator (issue 16): PING_INLINE,
50 connections, unpipelined (`-P 1`) and 16 commands per write (`-P 16`),
against redis-server itself and against line servers that answer every line
with `+PONG\\r\\n`: socketkit's `on_message` (Python handler) and handler
mode, socketserver, asyncio streams and uvloop. Reports req/s and each
server's ratio to redis-server, measured in one run, the servers taking
turns round by round (medians).

Every server runs in its own process (`redis.py --serve KIND` prints its
port and serves until its stdin closes); redis-server is started on a free
loopback port and stopped afterwards. redis-benchmark comes from the
redis-tools package, installed with apt when missing.

    python benches/redis.py [--quick] [--rounds N] [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import socket
import socketserver
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import Row, child_server, ensure_tool  # noqa: E402

CONNS = 50
PIPELINES = (1, 16)
PONG = b"+PONG\r\n"
REDIS = "redis-server"

SERVERS = [
    (REDIS, "redis"),
    ("socketkit on_message (line)", "sk-on_message"),
    ("socketkit handler", "sk-handler"),
    ("socketserver.ThreadingTCPServer", "socketserver"),
    ("asyncio streams", "asyncio"),
    ("uvloop streams", "uvloop"),
]

# Requests per measurement (full run): a run of -P 1 takes 2-5 s here.
FULL_REQUESTS = {1: 100_000, 16: 400_000}
QUICK_REQUESTS = {1: 20_000, 16: 100_000}
FULL_ROUNDS = 3


# --- the line servers, each run by `--serve KIND` in a child process --------


def _wait_stdin_closed() -> None:
    sys.stdin.read()


def serve(kind: str) -> None:
    if kind.startswith("sk-"):
        import socketkit

        if kind == "sk-on_message":
            srv = socketkit.TcpServer(on_message=lambda _line: PONG, framing="line")
        else:

            def handler(conn: socketkit.TcpClient) -> None:
                recv_line, sendall = conn.recv_line, conn.sendall
                while recv_line():
                    sendall(PONG)

            srv = socketkit.TcpServer(handler=handler)
        srv.start()
        print(srv.address[1], flush=True)
        _wait_stdin_closed()
        srv.stop()
    elif kind == "socketserver":

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                # Nagle off, as redis-server, asyncio and socketkit do: with
                # it on, every pipelined reply after the first waits for the
                # client's delayed ACK.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                readline, write = self.rfile.readline, self.wfile.write
                while readline():
                    write(PONG)

        socketserver.ThreadingTCPServer.daemon_threads = True
        socketserver.ThreadingTCPServer.request_queue_size = 1024
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as srv:
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            print(srv.server_address[1], flush=True)
            _wait_stdin_closed()
            srv.shutdown()
    elif kind in ("asyncio", "uvloop"):
        if kind == "uvloop":
            import uvloop

            uvloop.install()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while await reader.readline():
                    writer.write(PONG)
                    await writer.drain()
            except ConnectionError:
                pass
            writer.close()

        async def main() -> None:
            srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
            print(srv.sockets[0].getsockname()[1], flush=True)
            await asyncio.get_running_loop().run_in_executor(None, _wait_stdin_closed)
            srv.close()

        asyncio.run(main())
    else:
        raise SystemExit(f"unknown kind {kind}")


# --- redis-server and the measurement ----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(binary: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """redis-server on a free loopback port, no persistence; stopped after."""
    port = _free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += ["--daemonize", "no", "--protected-mode", "no", "--maxclients", "1024"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:  # ready once it answers PING
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16) == PONG:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start (exit status {proc.poll()})")
            time.sleep(0.02)
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server(kind: str, redis_binary: str) -> AbstractContextManager[tuple[object, int]]:
    if kind == "redis":
        return redis_server(redis_binary)
    return child_server([sys.executable, str(Path(__file__).resolve()), "--serve", kind])


def benchmark(tool: str, port: int, pipeline: int, requests: int) -> float:
    """req/s that redis-benchmark reports for PING_INLINE."""
    cmd = [tool, "-h", "127.0.0.1", "-p", str(port), "-t", "ping_inline"]
    cmd += ["-c", str(CONNS), "-P", str(pipeline), "-n", str(requests), "--csv"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    for rec in csv.reader(io.StringIO(out)):
        if rec and rec[0] == "PING_INLINE":
            return float(rec[1])
    raise RuntimeError(f"no PING_INLINE figure in redis-benchmark output: {out!r}")


def tools() -> tuple[str, str]:
    """Paths of redis-benchmark and redis-server, installing them if needed."""
    bench = ensure_tool("redis-benchmark", "redis-tools")
    srv = ensure_tool(REDIS, "redis-server")
    if not bench or not srv:
        raise RuntimeError("redis-benchmark/redis-server missing and apt-get could not install them")
    return bench, srv


def uvloop_present() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def measure(rounds: int, requests: dict[int, int]) -> dict[int, dict[str, list[float]]]:
    """req/s per pipeline depth, per server, one sample per round."""
    bench, redis_binary = tools()
    kinds = [k for k in SERVERS if k[1] != "uvloop" or uvloop_present()]
    samples: dict[int, dict[str, list[float]]] = {p: {name: [] for name, _ in kinds} for p in PIPELINES}
    for r in range(rounds):
        for name, kind in kinds:
            with server(kind, redis_binary) as (_proc, port):
                benchmark(bench, port, 1, 2_000)  # warm-up: threads, caches
                for p in PIPELINES:
                    samples[p][name].append(benchmark(bench, port, p, requests[p]))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    return samples


def medians(samples: dict[int, dict[str, list[float]]]) -> dict[int, dict[str, float]]:
    return {p: {n: statistics.median(v) for n, v in by.items()} for p, by in samples.items()}


def run(quick: bool = False) -> list[Row]:
    """For benches/run.py: one row per socketkit server and pipeline depth."""
    rates = medians(measure(1 if quick else FULL_ROUNDS, QUICK_REQUESTS if quick else FULL_REQUESTS))
    rows = []
    for p, by in rates.items():
        peers = {n: v for n, v in by.items() if not n.startswith("socketkit")}
        for name, v in by.items():
            if name.startswith("socketkit"):
                target = ">= 1.0x redis-server" if "on_message" in name else ""
                bench_name = f"redis-benchmark PING_INLINE -P {p}, {CONNS} conns: {name}"
                rows.append(Row(bench_name, "req/s", True, v, dict(peers), target))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="1 round, fewer requests")
    ap.add_argument("--rounds", type=int, default=FULL_ROUNDS)
    ap.add_argument("--requests", type=int, help="requests per measurement (default: by pipeline depth)")
    a = ap.parse_args()
    if a.serve:
        serve(a.serve)
        return
    requests = dict(QUICK_REQUESTS if a.quick else FULL_REQUESTS)
    if a.requests:
        requests = {p: a.requests for p in PIPELINES}
    rounds = 1 if a.quick else a.rounds
    samples = measure(rounds, requests)
    rates = medians(samples)
    print(f"\n### redis-benchmark PING_INLINE, {CONNS} connections, median of {rounds} rounds\n")
    print("| server | -P | req/s | rounds (min-max) | vs redis-server |")
    print("|---|---:|---:|---:|---:|")
    for p, by in rates.items():
        for name, v in by.items():
            lo, hi = min(samples[p][name]), max(samples[p][name])
            print(f"| {name} | {p} | {v:,.0f} | {lo:,.0f}-{hi:,.0f} | {v / by[REDIS]:.2f}x |")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
