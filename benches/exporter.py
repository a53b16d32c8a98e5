"""Exporter probes per second: ``socketkit exporter`` against the real
blackbox_exporter (Debian's ``prometheus-blackbox-exporter``) on the same
machine in one run, each given the same ``blackbox.yml`` (a ``tcp`` module)
and scraped by CONNS concurrent HTTP clients (keep-alive, back to back) for
SECONDS, every probe against one local port that accepts and closes; each
exporter's CPU time per probe and RSS (VmRSS and its peak VmHWM) beside it,
summed over socketkit's worker processes (``--workers``, the CPU count
unless given here).

    python benches/exporter.py [--quick] [--conns 50] [--seconds 10] [--workers N]

The load comes from a native client (peers/src/bin/httpload.rs), so the
exporters' speed is what is measured; only answers that are a 200 with
``probe_success 1`` count. The exporters take turns within each round
(interleaved repeats, medians). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import Row, build_peers  # noqa: E402

BLACKBOX = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
CONFIG = (
    "modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n"
)

#: Accepts and closes each connection (the probed port), in its own process.
ACCEPTOR = """
import socket, sys
s = socket.create_server(("127.0.0.1", 0), backlog=4096)
print(s.getsockname()[1], flush=True)
while True:
    s.accept()[0].close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def family(pid: int) -> list[int]:
    """A process and its live children (the exporter's workers)."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, kids)]


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process and its workers in MiB (summed; shared
    pages count once per process, so this is an upper bound)."""
    fields = {"VmRSS": 0.0, "VmHWM": 0.0}
    for p in family(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in fields:
                fields[key] += int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its workers (all their
    threads), in seconds."""
    total = 0
    for p in family(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wait_http(port: int, proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        assert proc.poll() is None, f"exporter exited with {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def started(argv: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(port, proc)
        yield proc
    finally:
        proc.terminate()  # the PID we started
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def load(loadgen: Path, port: int, conns: int, seconds: float, target: str) -> tuple[float, int, int]:
    """(answered probes/s, non-success answers, connection errors)."""
    path = f"/probe?target={target}&module=tcp_connect"
    out = subprocess.run(
        [str(loadgen), "127.0.0.1", str(port), str(conns), str(seconds), path, "probe_success 1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), int(out[2]), int(out[3])


def measure(
    conns: int, seconds: float, repeats: int, workers: int | None = None
) -> dict[str, dict[str, float]]:
    if BLACKBOX is None:
        raise SystemExit("prometheus-blackbox-exporter is not installed (apt-get install it)")
    loadgen = build_peers() / "httpload"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "blackbox.yml"
        cfg.write_text(CONFIG)
        acceptor = subprocess.Popen([sys.executable, "-c", ACCEPTOR], stdout=subprocess.PIPE, text=True)
        assert acceptor.stdout is not None
        target = f"127.0.0.1:{int(acceptor.stdout.readline())}"
        sk_port, bb_port = free_port(), free_port()
        sk_argv = [sys.executable, "-m", "socketkit", "exporter", "--config", str(cfg)]
        sk_argv += ["--listen", f"127.0.0.1:{sk_port}"]
        if workers is not None:
            sk_argv += ["--workers", str(workers)]
        bb_argv = [str(BLACKBOX), f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{bb_port}"]
        try:
            with started(sk_argv, sk_port) as sk, started(bb_argv, bb_port) as bb:
                exporters = {"socketkit": (sk, sk_port), "blackbox_exporter": (bb, bb_port)}
                rates: dict[str, list[float]] = {name: [] for name in exporters}
                # CPU per probe: a figure the shared machine's noise moves less than a rate.
                cpu_us: dict[str, list[float]] = {name: [] for name in exporters}
                bad: dict[str, int] = dict.fromkeys(exporters, 0)
                for _, port in exporters.values():
                    load(loadgen, port, conns, min(1.0, seconds), target)  # warm-up
                for _ in range(repeats):
                    for name, (proc, port) in exporters.items():
                        cpu0 = cpu_seconds(proc.pid)
                        rate, failed, errors = load(loadgen, port, conns, seconds, target)
                        cpu_us[name].append((cpu_seconds(proc.pid) - cpu0) / max(rate * seconds, 1) * 1e6)
                        rates[name].append(rate)
                        bad[name] += failed + errors
                return {
                    name: {
                        "probes_per_s": statistics.median(rates[name]),
                        "cpu_us_per_probe": statistics.median(cpu_us[name]),
                        "rss_mib": rss_mib(proc.pid)[0],
                        "peak_rss_mib": rss_mib(proc.pid)[1],
                        "not_answered": bad[name],
                        "runs": len(rates[name]),
                    }
                    for name, (proc, _) in exporters.items()
                }
        finally:
            acceptor.terminate()
            acceptor.wait(10)


def rows(result: dict[str, dict[str, float]], conns: int) -> list[Row]:
    sk, bb = result["socketkit"], result["blackbox_exporter"]
    return [
        Row(
            f"exporter probes/s, tcp module, {conns} concurrent scrapes",
            "probes/s",
            True,
            sk["probes_per_s"],
            {"blackbox_exporter": bb["probes_per_s"]},
            ">= 1.0x",
        ),
        Row(
            "exporter CPU time per probe under that load",
            "us",
            False,
            sk["cpu_us_per_probe"],
            {"blackbox_exporter": bb["cpu_us_per_probe"]},
            "",
        ),
        Row(
            "exporter peak RSS under that load",
            "MiB",
            False,
            sk["peak_rss_mib"],
            {"blackbox_exporter": bb["peak_rss_mib"]},
            "beside it",
        ),
    ]


def run(quick: bool) -> list[Row]:
    conns = 50
    return rows(measure(conns, 3.0 if quick else 10.0, 1 if quick else 3), conns)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="socketkit's --workers (default: its own)")
    args = ap.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    repeats = args.repeats or (1 if args.quick else 3)
    result = measure(args.conns, seconds, repeats, args.workers)
    print(json.dumps(result, indent=2))
    from common import table

    print(table(rows(result, args.conns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
