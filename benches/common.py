"""Shared helpers for the benchmarks: repeats with medians, native peers,
and the Markdown table. Benchmarks print ratios measured in one run, since
absolute numbers move 3-40% between runs on a shared 2-core machine."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"


@dataclass
class Row:
    """One benchmark line: socketkit's figure and each peer's, same unit."""

    name: str
    unit: str
    higher_is_better: bool
    socketkit: float
    peers: dict[str, float] = field(default_factory=dict)
    target: str = ""

    def ratio(self, peer: str) -> float:
        other = self.peers[peer]
        if self.higher_is_better:
            return self.socketkit / other if other else float("inf")
        return other / self.socketkit if self.socketkit else float("inf")


def median_of(repeats: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(repeats))


def interleaved(repeats: int, fns: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Median of each function over `repeats` rounds, the functions taking
    turns within each round so that machine noise hits them alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(fn())
    return {name: statistics.median(v) for name, v in samples.items()}


def build_peers() -> Path:
    """Build the native peers once (cargo, release); returns the bin dir."""
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--manifest-path", str(PEERS / "Cargo.toml")],
        check=True,
    )
    return PEERS / "target" / "release"


@contextmanager
def child_server(cmd: list[str]) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Run a server process that prints its port on its first line and
    serves until its stdin closes; yields (process, port)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc, int(proc.stdout.readline())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@contextmanager
def native_echo(mode: str = "echo") -> Iterator[tuple[str, int]]:
    """The std::net echo server (TCP thread per connection + UDP echo), or
    with mode="accept-close" a server that closes every connection at once."""
    binary = build_peers() / "echo"
    args = [str(binary)] + (["accept-close"] if mode == "accept-close" else [])
    with child_server(args) as (_proc, port):
        yield ("127.0.0.1", port)


def ensure_tool(binary: str, apt_package: str) -> str | None:
    """Path of `binary`, installing the Debian package when missing and root."""
    found = shutil.which(binary)
    if found:
        return found
    try:
        subprocess.run(["apt-get", "install", "-y", "-q", apt_package], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        try:
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-q", apt_package], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            return None
    return shutil.which(binary)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def table(rows: list[Row]) -> str:
    out = [
        "| benchmark | socketkit | peer | peer figure | ratio (socketkit vs peer) | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        better = "higher" if r.higher_is_better else "lower"
        for i, (peer, value) in enumerate(r.peers.items()):
            first = i == 0
            out.append(
                f"| {r.name if first else ''} | {f'{r.socketkit:,.2f} {r.unit}' if first else ''} "
                f"| {peer} | {value:,.2f} {r.unit} | {r.ratio(peer):.2f}x | {r.target if first else ''} |"
            )
        if not r.peers:
            out.append(f"| {r.name} | {r.socketkit:,.2f} {r.unit} ({better} is better) | | | | {r.target} |")
    return "\n".join(out)
