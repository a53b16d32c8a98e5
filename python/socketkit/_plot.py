"""``PingStats.plot()`` and ``ScanReport.plot()``: matplotlib figures.

matplotlib is an optional extra (``pip install 'socketkit[plot]'``): it is
imported on the first call only, so ``import socketkit`` stays light and a
missing install says which extra brings it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from socketkit.results import PingStats, ScanReport

__all__ = ["plot_ping", "plot_scan"]

#: State -> colour of a scan plot (closed is drawn only when asked for).
STATE_COLOURS = {
    "open": "tab:green",
    "filtered": "tab:orange",
    "open|filtered": "tab:purple",
    "error": "tab:red",
    "closed": "lightgray",
}


def _pyplot(what: str) -> Any:
    try:
        return importlib.import_module("matplotlib.pyplot")
    except ImportError:
        raise ImportError(
            f"{what} needs matplotlib, which is not installed: "
            "pip install 'socketkit[plot]' (or pip install matplotlib)"
        ) from None


def _axes(what: str, ax: Any) -> Any:
    plt = _pyplot(what)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    return ax


def plot_ping(stats: PingStats, ax: Any = None) -> Any:
    """Handshake time per ping (line and dots), lost pings as red crosses
    on the x axis, the mean as a dashed line. Returns the Axes."""
    ax = _axes("PingStats.plot()", ax)
    rows = stats.to_dicts()
    seq = [r["seq"] for r in rows if r["rtt_ms"] is not None]
    rtt = [r["rtt_ms"] for r in rows if r["rtt_ms"] is not None]
    lost = [r["seq"] for r in rows if r["rtt_ms"] is None]
    ax.plot(seq, rtt, marker="o", markersize=3, linewidth=1.2, label="reply")
    if lost:
        ax.plot(lost, [0.0] * len(lost), "x", color=STATE_COLOURS["error"], markersize=8, label="lost")
    if stats.avg is not None:
        ax.axhline(stats.avg, linestyle="--", linewidth=0.8, color="gray", label=f"avg {stats.avg:.3f} ms")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("ping")
    ax.set_ylabel("RTT (ms)")
    ax.set_title(f"tcping {stats.host}:{stats.port}: {stats.received}/{stats.sent} replies")
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_scan(report: ScanReport, ax: Any = None, *, closed: bool = False) -> Any:
    """One dot per port found (x: port, y: host), coloured by state;
    closed ports only with ``closed=True``. Returns the Axes."""
    ax = _axes("ScanReport.plot()", ax)
    hosts = report.hosts
    row = {h: i for i, h in enumerate(hosts)}
    for state, colour in STATE_COLOURS.items():
        if state == "closed" and not closed:
            continue
        pts = [(r.port, row[r.host]) for r in report.results if r.state == state]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.scatter(xs, ys, s=18, color=colour, label=f"{state} ({len(pts)})")
    ax.set_yticks(range(len(hosts)), hosts)
    ax.set_ylim(-0.5, max(len(hosts), 1) - 0.5)
    ax.set_xlabel("port")
    ax.set_title(report._summary())
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no open or filtered ports", transform=ax.transAxes, ha="center", va="center")
    return ax
