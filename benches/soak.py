"""Soak (issue 15): a server of each mode -- handler, on_message, echo, TLS
on_message, UdpServer -- each in its own process under constant load for
``--minutes``, with its RSS, open fds and threads sampled every second.
Memory, fds and threads must stay flat: a leak per request or per
connection shows as a slope.

Load per server: four clients in request/response loops on long-lived
connections, plus one client that opens a fresh connection for every
request (connection churn); UdpServer gets two request/response loops.

Writes a CSV (one row per server per second) and, when matplotlib is
installed, a PNG of the three series; prints each series' drift.

    python benches/soak.py [--minutes 10] [--out benches/results]
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODES = ["handler", "on_message", "echo", "tls_on_message", "udp"]
PAYLOAD = b"x" * 63 + b"\n"


# -- the server side (a child process per mode) -------------------------------


def serve(mode: str, cert: str, key: str) -> None:
    """Start one server on loopback, print its port, serve until stdin closes."""
    import socketkit

    local = ("127.0.0.1", 0)

    def handler(conn: socketkit.TcpClient) -> None:
        for line in conn.lines():
            conn.sendall(line)

    if mode == "handler":
        srv: socketkit.TcpServer | socketkit.UdpServer = socketkit.TcpServer(local, handler)
    elif mode == "on_message":
        srv = socketkit.TcpServer(local, on_message=lambda m: m, framing="line")
    elif mode == "echo":
        srv = socketkit.TcpServer.echo(local)
    elif mode == "tls_on_message":
        tls = socketkit.TlsConfig(cert_file=cert, key_file=key)
        srv = socketkit.TcpServer(local, on_message=lambda m: m, framing="line", tls=tls)
    else:
        srv = socketkit.UdpServer(local, lambda data, peer: data)
    srv.start()
    print(srv.address[1], flush=True)
    sys.stdin.read()
    srv.stop()


# -- the load side -------------------------------------------------------------


@dataclass
class Server:
    mode: str
    proc: subprocess.Popen[str]
    port: int
    requests: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, ok: bool) -> None:
        with self.lock:
            if ok:
                self.requests += 1
            else:
                self.errors += 1


def tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the bench's own throwaway certificate
    return ctx


def tcp_connect(srv: Server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if srv.mode == "tls_on_message":
        return tls_context().wrap_socket(s, server_hostname="localhost")
    return s


def tcp_request(s: socket.socket) -> bool:
    s.sendall(PAYLOAD)
    got = b""
    while len(got) < len(PAYLOAD):
        chunk = s.recv(len(PAYLOAD) - len(got))
        if not chunk:
            return False
        got += chunk
    return got == PAYLOAD


def tcp_loop(srv: Server, stop: threading.Event, churn: bool) -> None:
    s: socket.socket | None = None
    while not stop.is_set():
        try:
            if s is None:
                s = tcp_connect(srv)
            srv.count(tcp_request(s))
            if churn:
                s.close()
                s = None
        except OSError:
            srv.count(False)
            if s is not None:
                s.close()
            s = None
            time.sleep(0.01)
    if s is not None:
        s.close()


def udp_loop(srv: Server, stop: threading.Event) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        while not stop.is_set():
            try:
                s.sendto(PAYLOAD, ("127.0.0.1", srv.port))
                srv.count(s.recv(65536) == PAYLOAD)
            except OSError:
                srv.count(False)


def load_threads(srv: Server, stop: threading.Event) -> list[threading.Thread]:
    if srv.mode == "udp":
        return [threading.Thread(target=udp_loop, args=(srv, stop), daemon=True) for _ in range(2)]
    loops = [threading.Thread(target=tcp_loop, args=(srv, stop, False), daemon=True) for _ in range(4)]
    return [*loops, threading.Thread(target=tcp_loop, args=(srv, stop, True), daemon=True)]


# -- sampling --------------------------------------------------------------------


def sample(pid: int) -> tuple[int, int, int]:
    """(RSS KiB, open fds, threads) of process `pid`."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


def make_cert(d: Path) -> tuple[str, str]:
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def plot(rows: list[dict[str, float | str]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        t = [float(r["t"]) / 60 for r in mine]
        axes[0].plot(t, [float(r["rss_kib"]) / 1024 for r in mine], label=mode)
        axes[1].plot(t, [float(r["fds"]) for r in mine], label=mode)
        axes[2].plot(t, [float(r["threads"]) for r in mine], label=mode)
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].set_ylabel("open fds")
    axes[2].set_ylabel("threads")
    axes[2].set_xlabel("minutes under load")
    for ax in axes:
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", ncol=5, fontsize="small")
    fig.suptitle("socketkit soak: one server process per mode, constant load")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def summary(rows: list[dict[str, float | str]], servers: list[Server]) -> None:
    print(
        f"{'mode':16} {'requests':>10} {'errors':>7} {'RSS MiB start->end':>20} {'fds min-max':>12} {'threads min-max':>16}"
    )
    for srv in servers:
        mine = [r for r in rows if r["mode"] == srv.mode]
        # RSS after a warm-up tenth against the last tenth (medians).
        k = max(1, len(mine) // 10)
        start = statistics.median(float(r["rss_kib"]) for r in mine[k : 2 * k]) / 1024
        end = statistics.median(float(r["rss_kib"]) for r in mine[-k:]) / 1024
        fds = [int(r["fds"]) for r in mine[k:]]
        thr = [int(r["threads"]) for r in mine[k:]]
        print(
            f"{srv.mode:16} {srv.requests:>10} {srv.errors:>7} {start:>9.1f} -> {end:<8.1f}"
            f" {min(fds):>5}-{max(fds):<6} {min(thr):>7}-{max(thr):<8}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=HERE / "results", help="directory for soak.csv and soak.png")
    ap.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--cert", help=argparse.SUPPRESS)
    ap.add_argument("--key", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.cert, args.key)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_cert(Path(tmp))
        servers = []
        for mode in MODES:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--serve", mode, "--cert", cert, "--key", key],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None
            servers.append(Server(mode, proc, int(proc.stdout.readline())))
        stop = threading.Event()
        threads = [t for srv in servers for t in load_threads(srv, stop)]
        for t in threads:
            t.start()
        rows: list[dict[str, float | str]] = []
        started = time.monotonic()
        seconds = int(args.minutes * 60)
        try:
            for i in range(1, seconds + 1):
                time.sleep(max(0.0, started + i - time.monotonic()))
                t = round(time.monotonic() - started, 2)
                for srv in servers:
                    rss, fds, thr = sample(srv.proc.pid)
                    rows.append(
                        {
                            "t": t,
                            "mode": srv.mode,
                            "rss_kib": rss,
                            "fds": fds,
                            "threads": thr,
                            "requests": srv.requests,
                        }
                    )
                if i % 60 == 0:
                    print(f"{i // 60} min: {sum(s.requests for s in servers)} requests", flush=True)
        finally:
            stop.set()
            for t in threads:
                t.join(5)
            for srv in servers:
                assert srv.proc.stdin is not None
                srv.proc.stdin.close()
                srv.proc.wait(30)
    csv_path = args.out / "soak.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["t", "mode", "rss_kib", "fds", "threads", "requests"])
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {csv_path}")
    png = args.out / "soak.png"
    if plot(rows, png):
        print(f"wrote {png}")
    summary(rows, servers)


if __name__ == "__main__":
    main()
