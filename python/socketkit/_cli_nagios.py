"""``--nagios`` on ``check`` and ``ping``: Nagios/Icinga plugin output.

One status line, ``SOCKETKIT OK - text | perfdata``, and the exit codes of
the Monitoring Plugins Development Guidelines: 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN (bad arguments included). Perfdata follows their grammar,
``'label'=value[UOM];[warn];[crit];[min];[max]``, times in seconds (``s``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import socketkit

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")


def status_line(code: int, text: str, perfdata: Sequence[str] = ()) -> str:
    line = f"SOCKETKIT {STATUS[code]} - {text}"
    return f"{line} | {' '.join(perfdata)}" if perfdata else line


def unknown(text: str) -> int:
    """Print the UNKNOWN line (a bad argument, an error before any result)."""
    print(status_line(UNKNOWN, " ".join(text.split())), flush=True)
    return UNKNOWN


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}".rstrip("0").rstrip(".")


def label(text: str) -> str:
    """A perfdata label: quoted when it holds a space, '=' or a quote."""
    if any(c in text for c in " ='"):
        return "'" + text.replace("'", "''") + "'"
    return text


def perf(
    name: str,
    value: float,
    uom: str,
    warn: float | None = None,
    crit: float | None = None,
    lo: float | None = None,
    hi: float | None = None,
) -> str:
    return f"{label(name)}={_num(value)}{uom};{_num(warn)};{_num(crit)};{_num(lo)};{_num(hi)}"


def _graded(seconds: float | None, args: argparse.Namespace) -> int:
    """A time against -w/--warning and -c/--critical (seconds)."""
    if seconds is None:
        return OK
    if args.critical is not None and seconds > args.critical:
        return CRITICAL
    if args.warning is not None and seconds > args.warning:
        return WARNING
    return OK


def check_status(args: argparse.Namespace, results: socketkit.Results) -> int:
    """check --nagios: a target not open is CRITICAL; the slowest
    handshake graded against the thresholds."""
    codes: list[int] = []
    parts: list[str] = []
    perfs: list[str] = []
    one = len(results) == 1
    for r in results:
        # A refusal's time is not a response time (check_tcp reports none).
        secs = r.rtt_ms / 1000 if r.rtt_ms is not None else None
        code = _graded(secs, args) if r.ok else CRITICAL
        codes.append(code)
        what = f"{r.target} {r.state}"
        if r.ok and secs is not None:
            what += f" in {secs:.6f} s"
        if not r.ok and r.error:
            what += f" ({r.error})"
        parts.append(what)
        if r.ok and secs is not None:
            name = "time" if one else f"time {r.target}"
            perfs.append(perf(name, secs, "s", args.warning, args.critical, 0))
    code = max(codes, default=UNKNOWN)
    bad = sum(c != OK for c in codes)
    head = f"{bad} of {len(codes)} not OK: " if bad and not one else ""
    print(status_line(code, head + "; ".join(parts), perfs), flush=True)
    return code


def ping_status(args: argparse.Namespace, stats: socketkit.PingStats) -> int:
    """ping --nagios: no reply at all is CRITICAL, some lost WARNING; the
    average handshake graded against the thresholds."""
    avg = stats.avg / 1000 if stats.avg is not None else None
    if stats.received == 0:
        code = CRITICAL
    else:
        code = max(_graded(avg, args), WARNING if stats.received < stats.sent else OK)
    text = f"{args.target}: {stats.sent} sent, {stats.received} received, {stats.loss_percent:.0f}% loss"
    if avg is not None:
        text += f", avg {avg:.6f} s"
    elif stats.errors:
        text += f" ({stats.errors[-1]})"
    perfs = [perf("loss", stats.loss_percent, "%", None, None, 0, 100)]
    if avg is not None:
        perfs.insert(0, perf("time", avg, "s", args.warning, args.critical, 0))
        perfs.append(perf("rtmin", (stats.min or 0) / 1000, "s", lo=0))
        perfs.append(perf("rtmax", (stats.max or 0) / 1000, "s", lo=0))
    print(status_line(code, text, perfs), flush=True)
    return code
