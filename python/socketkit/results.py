"""Result types of the probes: what ``check``, ``scan``, ``tcping`` and
``udp_probe`` return.

They are plain Python objects, built from the plain tuples the Rust core
hands back, so they pickle, compare and print without the extension module.
Every type reads well in a terminal (``repr``), in Jupyter (``_repr_html_``,
an HTML table), in a log or pipeline (``to_dict()``/``to_dicts()``,
``to_json()``, ``to_csv()``) and in pandas (``to_pandas()``, when pandas is
installed).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Self

from socketkit import _plot, _svg
from socketkit._format import (
    MAX_ROWS,
    Export,
    ResultList,
    check_extra,
    fmt_counts,
    fmt_ms,
    fmt_ms_series,
    fmt_target,
    plural,
    result_table,
    round_floats,
)
from socketkit._ping import PingProbe, Streak, address_changes, longest, periods, streak_dict

if TYPE_CHECKING:
    from socketkit.tls import TlsInfo

__all__ = ["CheckResult", "PingProbe", "PingStats", "Results", "ScanReport"]


class _CheckFields(NamedTuple):
    # The fields live in a plain named tuple so that CheckResult can add the
    # Export mixin as a second base: typing.NamedTuple itself takes no other
    # bases. CheckResult stays a named tuple (pickling, unpacking, field order).
    host: str
    address: str | None
    port: int
    proto: Literal["tcp", "udp"]
    # What a probe found (nmap's words); "open|filtered" is UDP's silence.
    # A Literal, so mypy --strict catches `r.state == "opne"`.
    state: Literal["open", "closed", "filtered", "error", "open|filtered"]
    rtt_ms: float | None
    error: str | None
    # Appended with defaults so that positional construction, unpacking of
    # the first seven and pickles of older versions keep working.
    timings: dict[str, float | None] | None = None
    captures: tuple[bytes | None, ...] | None = None
    failed_step: int | None = None
    received: bytes | None = None
    tls: TlsInfo | None = None


class CheckResult(_CheckFields, Export):
    """The answer of one probe of one ``host:port``.

    Fields: ``host`` (as given), ``address`` (the IP actually probed, or
    ``None`` if the name did not resolve), ``port``, ``proto`` (``"tcp"`` or
    ``"udp"``), ``state``, ``rtt_ms`` (handshake or reply time in
    milliseconds, ``None`` when nothing answered) and ``error`` (why, when
    there is something to say). ``ok`` is ``state == "open"``.

    Then what a service check adds: ``timings`` (a dict of milliseconds:
    ``resolve_ms``, ``connect_ms``, ``tls_ms``, ``dialogue_ms``,
    ``total_ms``; ``None`` for a phase that did not run), ``captures`` (the
    groups of the last regex ``Expect`` that matched), ``failed_step`` (the
    0-based index of the step that failed) and ``received`` (the bytes that
    arrived during it), and ``tls`` (:class:`socketkit.TlsInfo` when TLS
    ran). The exports of a plain port check keep their eight columns; a
    service check's rows add its timings and findings.

    States have nmap's meaning: ``"open"`` (the handshake completed / a UDP
    reply came back), ``"closed"`` (refused: RST or ICMP port unreachable;
    also a loopback self-connection), ``"filtered"`` (no answer before the
    timeout, or an ICMP unreachable from a router or firewall), ``"error"``
    (anything else, e.g. a name that does not resolve) and, for UDP only,
    ``"open|filtered"`` (silence: open or dropped, UDP cannot tell).

    It is a named tuple, so ``host, address, port, *_ = result`` works.
    """

    __slots__ = ()

    @classmethod
    def _make(cls, iterable: Iterable[Any]) -> Self:  # type: ignore[override]
        """From a tuple of the twelve fields, or of the first seven (what
        older code passes; the rest take their defaults)."""
        t = tuple(iterable)
        if len(t) == len(cls._fields):
            return tuple.__new__(cls, t)
        return cls(*t)

    @property
    def ok(self) -> bool:
        """True when the port is open."""
        return self.state == "open"

    @property
    def target(self) -> str:
        """``"host:port"`` (``"[v6]:port"`` for IPv6 literals)."""
        return fmt_target(self.host, self.port)

    def __repr__(self) -> str:
        parts = [f"{self.target}/{self.proto} {self.state}"]
        if self.rtt_ms is not None:
            parts.append(fmt_ms(self.rtt_ms))
        if self.address is not None and self.address != self.host:
            parts.append(f"address={self.address}")
        if self.error:
            parts.append(f"error={self.error!r}")
        if self.failed_step is not None:
            parts.append(f"failed_step={self.failed_step}, received={self.received!r}")
        if self.captures:
            parts.append(f"captures={self.captures!r}")
        return f"CheckResult({', '.join(parts)})"

    __str__ = __repr__

    def to_dict(self) -> dict[str, Any]:
        """The fields (and ``ok``) as a dict, ready for JSON (``rtt_ms``
        rounded to the nanosecond)."""
        return {
            "host": self.host,
            "address": self.address,
            "port": self.port,
            "proto": self.proto,
            "state": self.state,
            "ok": self.ok,
            "rtt_ms": round_floats(self.rtt_ms),
            "error": self.error,
            **check_extra(self),
        }

    def to_dicts(self) -> list[dict[str, Any]]:
        """``[self.to_dict()]``, so one result exports like a list (CSV,
        pandas); ``to_json()`` writes the one object."""
        return [self.to_dict()]

    def _json_value(self) -> Any:
        return self.to_dict()

    def _html(self) -> tuple[list[dict[str, Any]], str, int]:
        return [self.to_dict()], f"{self.target}/{self.proto}: {self.state}", 0


class Results(ResultList[CheckResult]):
    """A list of :class:`CheckResult` in the order the targets were given,
    with summaries: ``open``/``closed``/``filtered``/``errors`` (sub-lists),
    ``counts`` (state -> number), ``all_ok``, and the exports
    ``to_dicts()``, ``to_json()``, ``to_csv()``, ``to_pandas()``."""

    @property
    def open(self) -> Results:
        """The open results."""
        return self._where(lambda r: r.state == "open")

    @property
    def closed(self) -> Results:
        """The closed results."""
        return self._where(lambda r: r.state == "closed")

    @property
    def filtered(self) -> Results:
        """The filtered results."""
        return self._where(lambda r: r.state == "filtered")

    @property
    def errors(self) -> Results:
        """The results whose state is ``"error"``."""
        return self._where(lambda r: r.state == "error")

    def __repr__(self) -> str:
        shown = self[:MAX_ROWS]
        return f"Results({self._summary()})\n" + result_table(shown, more=len(self) - len(shown))

    __str__ = __repr__


class ScanReport(Export):
    """What ``scan`` found: every result (``results``, host by host in the
    order of ``ports``), and views of it.

    ``open`` (the open results), ``open_ports(host=None)`` (sorted port
    numbers), ``by_host()`` (host -> open ports), ``counts`` (state ->
    number), ``hosts``, ``ports`` (the ports scanned per host), ``elapsed``
    (seconds). Like nmap, ``repr`` and the HTML table list the ports that
    are not closed and summarise the closed ones.
    """

    def __init__(self, results: Iterable[CheckResult], *, ports: int, elapsed: float) -> None:
        self.results = Results(results)
        self.ports = ports
        self.elapsed = elapsed

    @property
    def hosts(self) -> list[str]:
        """The hosts scanned, in order (CIDR blocks expanded)."""
        return list(dict.fromkeys(r.host for r in self.results))

    @property
    def open(self) -> Results:
        """The open results."""
        return self.results.open

    @property
    def counts(self) -> dict[str, int]:
        """How many ports each state has, over every host."""
        return self.results.counts

    def open_ports(self, host: str | None = None) -> list[int]:
        """Sorted open port numbers (of one host, or of all hosts)."""
        return sorted({r.port for r in self.results if r.ok and (host is None or r.host == host)})

    def by_host(self) -> dict[str, list[int]]:
        """Host -> sorted open ports, for every scanned host."""
        out: dict[str, list[int]] = {h: [] for h in self.hosts}
        for r in self.results:
            if r.ok:
                out[r.host].append(r.port)
        return {h: sorted(p) for h, p in out.items()}

    def __len__(self) -> int:
        return len(self.results)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScanReport):
            return NotImplemented
        return (self.results, self.ports, self.elapsed) == (other.results, other.ports, other.elapsed)

    __hash__ = None  # type: ignore[assignment]  # mutable, as list is

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.results)

    def _summary(self) -> str:
        return (
            f"{plural(len(self.hosts), 'host')} x {plural(self.ports, 'port')} "
            f"in {self.elapsed:.2f} s: {fmt_counts(self.counts)}"
        )

    def _view(self) -> tuple[list[CheckResult], int, str]:
        """What repr and HTML list, as nmap does: the ports that are not
        closed (at most MAX_ROWS), how many of those were cut, and a note
        saying how many closed ones are not shown."""
        rows = [r for r in self.results if r.state != "closed"]
        closed = self.counts.get("closed", 0)
        note = f"({closed} closed ports not shown)" if closed else ""
        return rows[:MAX_ROWS], max(len(rows) - MAX_ROWS, 0), note

    def __repr__(self) -> str:
        shown, more, note = self._view()
        if not shown:
            # Nothing but closed ports: a sentence, not an empty table.
            return f"ScanReport({self._summary()})\nNo open or filtered ports {note}".rstrip()
        tail = f"\n{note}" if note else ""
        return f"ScanReport({self._summary()})\n" + result_table(shown, more=more) + tail

    __str__ = __repr__

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per scanned port, closed ones included."""
        return self.results.to_dicts()

    def to_dict(self) -> dict[str, Any]:
        """A summary: hosts, ports per host, elapsed, counts and open ports by host."""
        return {
            "hosts": self.hosts,
            "ports": self.ports,
            "elapsed": round_floats(self.elapsed),
            "counts": self.counts,
            "open": self.by_host(),
        }

    def _html(self) -> tuple[list[dict[str, Any]], str, int]:
        shown, more, note = self._view()
        caption = self._summary() + (f" {note}" if note else "")
        return [r.to_dict() for r in shown], caption, more

    def plot(self, ax: Any = None, *, closed: bool = False) -> Any:
        """Draw the ports found with matplotlib (x: port, y: host, coloured
        by state; closed ones only with ``closed=True``) on ``ax`` or a new
        figure; returns the Axes. Needs ``pip install 'socketkit[plot]'``."""
        return _plot.plot_scan(self, ax, closed=closed)


class PingStats(Export):
    """What ``tcping`` measured: one TCP handshake per "ping".

    ``sent``, ``received``, ``loss`` (a fraction 0-1, icmplib's
    ``packet_loss`` convention) and ``loss_percent`` (0-100, tcping's),
    ``rtts`` (the handshake times in ms of the pings that succeeded, in
    order), ``min``/``avg``/``max``/``stdev``/``median``/``p95`` and
    ``jitter`` (the mean absolute difference between successive rtts) in ms:
    ``None`` when there is no data (``stdev`` and ``jitter`` need two
    replies). ``errors`` holds, per ping, why it failed (``None`` for a
    reply). icmplib's names work too: ``address``, ``transmitted_packets``,
    ``received_packets``, ``packet_loss``, ``min_rtt``, ``avg_rtt``,
    ``max_rtt``, ``is_alive``.

    Over time (from ``probes``, the :class:`PingProbe` list of a
    ``tcping`` run; empty for stats made from rtts alone): ``uptime_s`` and
    ``downtime_s`` (a ping stands for the time until the next one starts,
    the last one until the run ended), ``longest_up`` and ``longest_down``
    (``(start, end, seconds)`` in Unix time, or ``None``) and
    ``address_changes`` (``(time, old, new)`` per change of the address
    pinged, with ``resolve_every``). These are kept at 100% loss too.
    """

    _columns = ("host", "address", "port", "seq", "rtt_ms", "error")

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        rtts: list[float | None],
        errors: list[str | None] | None = None,
        *,
        probes: list[PingProbe] | None = None,
        end: float | None = None,
    ) -> None:
        self.probes: list[PingProbe] = list(probes or [])
        self.end = end
        self._periods = periods(self.probes, end)
        self.host = host
        self.address = address
        self.port = port
        self.sent = len(rtts)
        self.rtts: list[float] = [r for r in rtts if r is not None]
        self.received = len(self.rtts)
        # Without reasons, a lost ping still needs one: to_dicts() pairs
        # each None in errors with the next rtt.
        self.errors: list[str | None] = (
            list(errors) if errors is not None else [None if r is not None else "no reply" for r in rtts]
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PingStats):
            return NotImplemented
        return (self.host, self.address, self.port, self.sent, self.rtts, self.errors) == (
            other.host,
            other.address,
            other.port,
            other.sent,
            other.rtts,
            other.errors,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, as list is

    @property
    def loss(self) -> float:
        """Lost pings as a fraction, 0.0-1.0."""
        return (self.sent - self.received) / self.sent if self.sent else 0.0

    @property
    def loss_percent(self) -> float:
        """Lost pings in percent, 0-100."""
        return self.loss * 100.0

    @property
    def min(self) -> float | None:
        """Fastest handshake, ms."""
        return min(self.rtts) if self.rtts else None

    @property
    def max(self) -> float | None:
        """Slowest handshake, ms."""
        return max(self.rtts) if self.rtts else None

    @property
    def avg(self) -> float | None:
        """Mean handshake time, ms."""
        return statistics.fmean(self.rtts) if self.rtts else None

    @property
    def stdev(self) -> float | None:
        """Sample standard deviation, ms (needs two replies)."""
        return statistics.stdev(self.rtts) if len(self.rtts) >= 2 else None

    @property
    def median(self) -> float | None:
        """Median handshake time, ms."""
        return statistics.median(self.rtts) if self.rtts else None

    @property
    def p95(self) -> float | None:
        """95th percentile (linear interpolation between closest ranks), ms."""
        if len(self.rtts) < 2:
            # quantiles() wants two points before Python 3.13; one is its own p95.
            return self.rtts[0] if self.rtts else None
        # method="inclusive" is numpy's default ("linear"), which p95 has
        # always used: the 19th of 20 cut points is the 95th percentile.
        return statistics.quantiles(self.rtts, n=20, method="inclusive")[18]

    @property
    def jitter(self) -> float | None:
        """Mean absolute difference of successive rtts, ms (needs two replies)."""
        if len(self.rtts) < 2:
            return None
        return statistics.fmean(abs(b - a) for a, b in pairwise(self.rtts))

    @property
    def uptime_s(self) -> float:
        """Seconds the target was up (connecting), as the pings saw it."""
        return sum((b - a for up, a, b in self._periods if up), 0.0)

    @property
    def downtime_s(self) -> float:
        """Seconds the target was down (pings failing)."""
        return sum((b - a for up, a, b in self._periods if not up), 0.0)

    @property
    def longest_up(self) -> Streak | None:
        """The longest run of connecting pings: (start, end, seconds)."""
        return longest(self._periods, True)

    @property
    def longest_down(self) -> Streak | None:
        """The longest run of failing pings: (start, end, seconds)."""
        return longest(self._periods, False)

    @property
    def address_changes(self) -> list[tuple[float, str, str]]:
        """(time, old, new) each time the address pinged changed."""
        return address_changes(self.probes)

    # icmplib's names
    @property
    def transmitted_packets(self) -> int:
        """icmplib's name for ``sent``."""
        return self.sent

    @property
    def received_packets(self) -> int:
        """icmplib's name for ``received``."""
        return self.received

    @property
    def packet_loss(self) -> float:
        """icmplib's name for ``loss`` (a fraction)."""
        return self.loss

    @property
    def min_rtt(self) -> float:
        """icmplib's ``min_rtt``: ``min``, 0.0 without replies."""
        return self.min or 0.0

    @property
    def avg_rtt(self) -> float:
        """icmplib's ``avg_rtt``: ``avg``, 0.0 without replies."""
        return self.avg or 0.0

    @property
    def max_rtt(self) -> float:
        """icmplib's ``max_rtt``: ``max``, 0.0 without replies."""
        return self.max or 0.0

    @property
    def is_alive(self) -> bool:
        """True when at least one ping got through."""
        return self.received > 0

    def to_dict(self) -> dict[str, Any]:
        """Every statistic and the rtts as a dict (floats to the nanosecond)."""
        return round_floats(
            {
                "host": self.host,
                "address": self.address,
                "port": self.port,
                "sent": self.sent,
                "received": self.received,
                "loss": self.loss,
                "loss_percent": self.loss_percent,
                "min": self.min,
                "avg": self.avg,
                "max": self.max,
                "stdev": self.stdev,
                "median": self.median,
                "p95": self.p95,
                "jitter": self.jitter,
                "rtts": list(self.rtts),
                "uptime_s": self.uptime_s,
                "downtime_s": self.downtime_s,
                "longest_up": streak_dict(self.longest_up),
                "longest_down": streak_dict(self.longest_down),
                "address_changes": [list(c) for c in self.address_changes],
            }
        )

    def to_dicts(self) -> list[dict[str, Any]]:
        """One row per ping: seq, rtt_ms (None if lost) and error."""
        rows: list[dict[str, Any]] = []
        it = iter(self.rtts)
        for seq, err in enumerate(self.errors, 1):
            rows.append(
                {
                    "host": self.host,
                    "address": self.address,
                    "port": self.port,
                    "seq": seq,
                    "rtt_ms": round_floats(next(it)) if err is None else None,
                    "error": err,
                }
            )
        return rows

    def _json_value(self) -> Any:
        return self.to_dict()

    def __repr__(self) -> str:
        target = fmt_target(self.host, self.port)
        s = (
            f"PingStats({target} ({self.address}): {self.sent} sent, {self.received} received, "
            f"{self.loss_percent:.0f}% loss"
        )
        if self.rtts:
            s += ", min/avg/max/stdev = " + fmt_ms_series([self.min, self.avg, self.max, self.stdev])
            if self.jitter is not None:
                s += f", jitter {fmt_ms(self.jitter)}"
        return s + ")"

    __str__ = __repr__

    def _html(self) -> tuple[list[dict[str, Any]], str, int]:
        rows = [{"statistic": k, "value": v} for k, v in self.to_dict().items() if k != "rtts"]
        return rows, f"tcping {fmt_target(self.host, self.port)}", 0

    def _repr_html_(self) -> str:
        # The numbers and, beside them, the rtts over time (inline SVG).
        series = [r["rtt_ms"] for r in self.to_dicts()]
        chart = _svg.latency_svg(series, title=f"RTT per ping, {fmt_target(self.host, self.port)}")
        return _svg.side_by_side(super()._repr_html_(), chart)

    def plot(self, ax: Any = None) -> Any:
        """Draw the rtts over time with matplotlib (lost pings as red
        crosses, the mean dashed) on ``ax`` or a new figure; returns the
        Axes. Needs ``pip install 'socketkit[plot]'``."""
        return _plot.plot_ping(self, ax)
