"""TLS benchmarks of issue 11, socketkit against the stdlib's `ssl` in one run:

- handshakes per second against nginx on loopback: `TcpClient(tls=...)`
  connect + handshake + close vs `ssl.create_default_context().wrap_socket`;
- bulk throughput over TLS to one peer (socketkit's TLS echo server, the same
  peer for both clients): `sendall` + `recv_into` vs the stdlib's;
- certificate check of 1,000 TLS endpoints (one nginx on 1,000 ports):
  `tls_check_many` vs a `ThreadPoolExecutor(64)` + `ssl` loop and an asyncio
  + `ssl` loop (Semaphore(256)); on stderr, the CPU per check of the client
  process and of nginx, and the floor nginx's one worker sets (its CPU for
  all the handshakes): the most any client can show against the stdlib.

    python benches/tls.py [--quick]

Needs nginx and the `cryptography` package (the test extra); the peers are
the tests' own (tests/daemons.py, tests/tls_pki.py). nginx presents the EC
P-256 certificate: with RSA-2048 the server's signatures (about 1 ms of CPU
each, on the same 2 cores) bound every client alike and the ratios say
nothing about the clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from common import Row, interleaved, table  # noqa: E402
from daemons import nginx_tls_ports  # noqa: E402
from tls_pki import make_pki  # noqa: E402

import socketkit  # noqa: E402


def _handshakes(connect_once, seconds: float) -> float:
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        connect_once()
        n += 1
    return n / seconds


def handshake_rate(pki, port: int, seconds: float, repeats: int) -> Row:
    cfg = socketkit.TlsConfig(ca_file=str(pki.ca.cert))
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))

    def sk() -> None:
        with socketkit.TcpClient(("localhost", port), timeout=5, tls=cfg):
            pass

    def std() -> None:
        with socket.create_connection(("localhost", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost"):
                pass

    got = interleaved(
        repeats, {"sk": lambda: _handshakes(sk, seconds), "std": lambda: _handshakes(std, seconds)}
    )
    return Row(
        "TLS connect + handshake + close (nginx)",
        "handshakes/s",
        True,
        got["sk"],
        {"stdlib ssl wrap_socket": got["std"]},
        ">= 1.0x stdlib",
    )


def bulk(pki, total: int, repeats: int) -> Row:
    server_cfg = socketkit.TlsConfig(cert_file=str(pki.valid.cert), key_file=str(pki.valid.key))
    cfg = socketkit.TlsConfig(ca_file=str(pki.ca.cert))
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    chunk = os.urandom(256 * 1024)

    def pump(send, recv_into) -> float:
        # One thread, chunk by chunk (send 256 KiB, read its echo): the
        # stdlib's SSLSocket must not read and write from two threads at
        # once, and the same shape for both clients keeps the ratio fair.
        buf = bytearray(len(chunk))
        view = memoryview(buf)
        t0 = time.perf_counter()
        done = 0
        while done < total:
            send(chunk)
            got = 0
            while got < len(chunk):
                n = recv_into(view[got:])
                if not n:
                    raise ConnectionError("the echo peer closed")
                got += n
            done += len(chunk)
        return total / (time.perf_counter() - t0) / (1 << 30)

    with socketkit.TcpServer.echo(tls=server_cfg) as srv:
        port = srv.address[1]

        def sk() -> float:
            with socketkit.TcpClient(("localhost", port), timeout=30, tls=cfg) as c:
                return pump(c.sendall, c.recv_into)

        def std() -> float:
            with socket.create_connection(("localhost", port), timeout=30) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    return pump(s.sendall, s.recv_into)

        got = interleaved(repeats, {"sk": sk, "std": std})
    return Row(
        f"TLS bulk {total >> 20} MiB echoed (socketkit TLS echo peer)",
        "GiB/s",
        True,
        got["sk"],
        {"stdlib ssl sendall+recv_into": got["std"]},
        ">= 1.0x stdlib",
    )


def _std_cert_check(ctx: ssl.SSLContext, port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                return t.getpeercert(binary_form=True) is not None
    except OSError:
        return False


async def _async_checks(ctx: ssl.SSLContext, ports: list[int]) -> int:
    sem = asyncio.Semaphore(256)

    async def one(port: int) -> bool:
        async with sem:
            try:
                _r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost"), 5
                )
            except (TimeoutError, OSError):
                return False
            ok = w.get_extra_info("ssl_object").getpeercert(binary_form=True) is not None
            w.close()
            try:
                await w.wait_closed()
            except OSError:
                pass
            return ok

    return sum(await asyncio.gather(*(one(p) for p in ports)))


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (all their threads) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _family(pid: int) -> list[int]:
    """`pid` and its children (nginx's master and its worker)."""
    kids = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *map(int, kids.read_text().split())] if kids.exists() else [pid]


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def many_endpoints(pki, workdir: Path, n: int, repeats: int) -> tuple[Row, str]:
    """The row, and a note on where the time goes: CPU per check of this
    process (the client) and of nginx (the server's handshakes)."""
    svc = nginx_tls_ports(n, pki.valid_ec.cert, pki.valid_ec.key, workdir=workdir)
    cpu: dict[str, list[tuple[float, float]]] = {}
    try:
        ports = list(svc.ports.values())
        targets = [("localhost", p) for p in ports]
        cfg = socketkit.TlsConfig(ca_file=str(pki.ca.cert))
        ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
        nginx = _family(svc.daemon.proc.pid)

        def timed(name: str, fn) -> Callable[[], float]:
            def one() -> float:
                c0, s0, t0 = _own_cpu(), _cpu_seconds(nginx), time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                cpu.setdefault(name, []).append(((_own_cpu() - c0) / n, (_cpu_seconds(nginx) - s0) / n))
                return dt

            return one

        def sk() -> None:
            rs = socketkit.tls_check_many(targets, tls=cfg, timeout=10)
            assert sum(r.ok for r in rs) == n, rs.counts() if hasattr(rs, "counts") else rs

        def pool() -> None:
            with ThreadPoolExecutor(64) as ex:
                ok = sum(ex.map(lambda p: _std_cert_check(ctx, p), ports))
            assert ok == n, ok

        def aio() -> None:
            ok = asyncio.run(_async_checks(ctx, ports))
            assert ok == n, ok

        fns = {"sk": sk, "pool": pool, "aio": aio}
        got = interleaved(repeats, {k: timed(k, f) for k, f in fns.items()})
    finally:
        svc.stop()
    row = Row(
        f"certificate check of {n:,} TLS endpoints (nginx)",
        "s",
        False,
        got["sk"],
        {"stdlib ssl + ThreadPoolExecutor(64)": got["pool"], "asyncio + ssl, Semaphore(256)": got["aio"]},
        ">= 5x the faster",
    )
    per = {k: tuple(statistics.median(x[i] for x in v) * 1e3 for i in (0, 1)) for k, v in cpu.items()}
    floor = n * per["sk"][1] / 1e3
    both = n * (per["sk"][0] + per["sk"][1]) / 1e3 / (os.cpu_count() or 1)
    best = min(got["pool"], got["aio"])
    note = (
        f"{n:,} endpoints, CPU ms per check (client process / nginx): "
        + ", ".join(f"{k} {c:.3f} / {s:.3f}" for k, (c, s) in per.items())
        + f". nginx runs one worker: its {n:,} handshakes take {floor:.3f} s of CPU whatever the"
        f" client (socketkit took {got['sk']:.3f} s, {got['sk'] / floor:.2f}x that floor), so no"
        f" client can beat {best / floor:.2f}x the faster stdlib loop ({best:.3f} s) here. With"
        f" socketkit's own CPU, both cores' worth: {both:.3f} s."
    )
    return row, note


def run(quick: bool = False) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="socketkit-tls-bench-") as d:
        os.chmod(d, 0o755)  # nginx workers read the certificates
        pki = make_pki(Path(d) / "pki")
        os.chmod(pki.directory, 0o755)
        svc = nginx_tls_ports(1, pki.valid_ec.cert, pki.valid_ec.key, workdir=Path(d) / "one")
        try:
            rows = [
                handshake_rate(pki, next(iter(svc.ports.values())), 0.5 if quick else 2.0, 3 if quick else 5)
            ]
        finally:
            svc.stop()
        rows.append(bulk(pki, (64 if quick else 512) << 20, 3 if quick else 5))
        row, note = many_endpoints(pki, Path(d) / "many", 200 if quick else 1000, 1 if quick else 3)
        rows.append(row)
        # stderr: benches/run.py prints only the rows.
        print(note, file=sys.stderr)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    print(table(run(args.quick)))


if __name__ == "__main__":
    main()
