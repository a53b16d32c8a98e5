"""A latency-over-time chart as inline SVG, for ``PingStats`` in Jupyter.

Hand-written SVG rather than a plotting library: the chart must appear
wherever HTML renders (JupyterLab, VS Code, GitHub's notebook viewer, an
exported HTML file) with nothing installed beyond socketkit, and a few
hundred bytes of markup is all a sparkline of handshake times needs.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = ["latency_svg", "side_by_side"]

#: Colours of the notebook chart (matplotlib's default blue, and a red that
#: reads on light and dark themes).
REPLY = "#1f77b4"
LOST = "#d62728"


def _fmt(v: float) -> str:
    # Coordinates to a tenth of a pixel: finer only makes the markup longer.
    return f"{v:.1f}"


def latency_svg(rtts: Sequence[float | None], *, width: int = 260, height: int = 90, title: str = "") -> str:
    """An SVG chart of ``rtts`` (ms, one per ping in order, ``None`` for a
    lost ping): a line through the replies, a dot per reply, a red cross at
    the top for each lost ping. The y axis starts at 0, so small jitter
    looks small. Empty string for no pings."""
    n = len(rtts)
    if n == 0:
        return ""
    left, right, top, bottom = 44.0, 6.0, 8.0, 16.0
    plot_w, plot_h = width - left - right, height - top - bottom
    replies = [v for v in rtts if v is not None]
    ymax = max(replies) * 1.1 if replies and max(replies) > 0 else 1.0

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return top + plot_h * (1 - v / ymax)

    label = html.escape(title or "latency over time")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="socketkit-latency" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{label}" '
        'font-family="sans-serif" font-size="9">',
        f"<title>{label}</title>",
        # Axes: the baseline (0 ms) and the y axis, with the top value.
        f'<path d="M{_fmt(left)} {_fmt(top)}V{_fmt(top + plot_h)}H{_fmt(left + plot_w)}" '
        'stroke="#888" fill="none" stroke-width="1"/>',
        f'<text x="{_fmt(left - 3)}" y="{_fmt(top + 7)}" text-anchor="end" fill="#666">{ymax:.3g} ms</text>',
        f'<text x="{_fmt(left - 3)}" y="{_fmt(top + plot_h)}" text-anchor="end" fill="#666">0</text>',
        f'<text x="{_fmt(left)}" y="{height - 3}" fill="#666">1</text>',
        f'<text x="{_fmt(left + plot_w)}" y="{height - 3}" text-anchor="end" fill="#666">{n}</text>',
    ]
    # One polyline per run of replies: a lost ping breaks the line.
    run: list[str] = []
    runs: list[list[str]] = []
    for i, v in enumerate(rtts):
        if v is None:
            if run:
                runs.append(run)
            run = []
        else:
            run.append(f"{_fmt(x(i))},{_fmt(y(v))}")
    if run:
        runs.append(run)
    for r in runs:
        if len(r) > 1:
            out.append(f'<polyline points="{" ".join(r)}" fill="none" stroke="{REPLY}" stroke-width="1.5"/>')
    dots = n <= 120
    for i, v in enumerate(rtts):
        cx = x(i)
        if v is None:
            cy, d = top + 3, 3
            out.append(
                f'<path d="M{_fmt(cx - d)} {_fmt(cy - d)}L{_fmt(cx + d)} {_fmt(cy + d)}'
                f'M{_fmt(cx - d)} {_fmt(cy + d)}L{_fmt(cx + d)} {_fmt(cy - d)}" '
                f'stroke="{LOST}" stroke-width="1.5"><title>ping {i + 1}: lost</title></path>'
            )
        elif dots or len(replies) == 1:
            out.append(
                f'<circle cx="{_fmt(cx)}" cy="{_fmt(y(v))}" r="2" fill="{REPLY}">'
                f"<title>ping {i + 1}: {v:.3f} ms</title></circle>"
            )
    if not replies:
        out.append(
            f'<text x="{_fmt(left + plot_w / 2)}" y="{_fmt(top + plot_h / 2)}" text-anchor="middle" '
            f'fill="{LOST}">no replies</text>'
        )
    out.append("</svg>")
    return "".join(out)


def side_by_side(table: str, chart: str, caption: str = "RTT per ping") -> str:
    """``table`` with ``chart`` beside it (below, when the cell is narrow)."""
    if not chart:
        return table
    return (
        '<div class="socketkit" style="display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start">'
        f'{table}<figure style="margin:0">{chart}'
        f'<figcaption style="font-size:small;color:#666">{html.escape(caption)}</figcaption>'
        "</figure></div>"
    )
