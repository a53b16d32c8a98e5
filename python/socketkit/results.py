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

import csv
import html
import importlib
import io
import json
import math
import statistics
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, SupportsIndex, overload

__all__ = ["CheckResult", "PingStats", "Results", "ScanReport"]

#: Rows an HTML table or text table shows before it says "... N more".
MAX_ROWS = 200

_FIELDS = ("host", "address", "port", "proto", "state", "ok", "rtt_ms", "error")


def _fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 1:
        return f"{v:.3f} ms"
    return f"{v:.2f} ms"


def _fmt_target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Export:
    """Shared exports; subclasses define ``to_dicts()``."""

    @abstractmethod
    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (each result type says what a row is)."""

    def to_json(self, *, indent: int | None = None) -> str:
        """The rows of :meth:`to_dicts` as a JSON array (a JSON object for a
        single result)."""
        return json.dumps(self._json_value(), indent=indent)

    def _json_value(self) -> Any:
        return self.to_dicts()

    def to_csv(self, path: Any = None) -> str:
        """The rows as CSV with a header line. Writes to ``path`` (a file
        name or a text file object) when given; always returns the text."""
        rows = self.to_dicts()
        buf = io.StringIO()
        fields = list(rows[0].keys()) if rows else list(_FIELDS)
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        text = buf.getvalue()
        if path is not None:
            if hasattr(path, "write"):
                path.write(text)
            else:
                with open(path, "w", newline="", encoding="utf-8") as f:
                    f.write(text)
        return text

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame``; needs pandas installed."""
        try:
            pd = importlib.import_module("pandas")
        except ImportError:
            raise ImportError(
                "to_pandas() needs pandas, which is not installed: pip install pandas"
            ) from None
        return pd.DataFrame(self.to_dicts())


def _html_table(rows: list[dict[str, Any]], caption: str, more: int = 0) -> str:
    cols = list(rows[0].keys()) if rows else list(_FIELDS)
    out = ['<table class="socketkit">', f"<caption>{html.escape(caption)}</caption>", "<thead><tr>"]
    out += [f"<th>{html.escape(c)}</th>" for c in cols]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>")
        for c in cols:
            v = r[c]
            if v is None:
                text = ""
            elif c == "rtt_ms" and isinstance(v, float):
                text = f"{v:.3f}"
            else:
                text = str(v)
            out.append(f"<td>{html.escape(text)}</td>")
        out.append("</tr>")
    if more:
        out.append(f'<tr><td colspan="{len(cols)}">... {more} more</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _text_table(results: list[CheckResult], more: int = 0) -> str:
    head = ("TARGET", "ADDRESS", "PROTO", "STATE", "RTT", "ERROR")
    rows = [
        (
            _fmt_target(r.host, r.port),
            r.address or "-",
            r.proto,
            r.state,
            _fmt_ms(r.rtt_ms),
            r.error or "",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    if more:
        lines.append(f"... {more} more")
    return "\n".join(lines)


class CheckResult(NamedTuple):
    """The answer of one probe of one ``host:port``.

    Fields: ``host`` (as given), ``address`` (the IP actually probed, or
    ``None`` if the name did not resolve), ``port``, ``proto`` (``"tcp"`` or
    ``"udp"``), ``state``, ``rtt_ms`` (handshake or reply time in
    milliseconds, ``None`` when nothing answered) and ``error`` (why, when
    there is something to say). ``ok`` is ``state == "open"``.

    States have nmap's meaning: ``"open"`` (the handshake completed / a UDP
    reply came back), ``"closed"`` (refused: RST or ICMP port unreachable;
    also a loopback self-connection), ``"filtered"`` (no answer before the
    timeout, or an ICMP unreachable from a router or firewall), ``"error"``
    (anything else, e.g. a name that does not resolve) and, for UDP only,
    ``"open|filtered"`` (silence: open or dropped, UDP cannot tell).

    It is a named tuple, so ``host, address, port, *_ = result`` works.
    """

    host: str
    address: str | None
    port: int
    proto: str
    state: str
    rtt_ms: float | None
    error: str | None

    @property
    def ok(self) -> bool:
        """True when the port is open."""
        return self.state == "open"

    @property
    def target(self) -> str:
        """``"host:port"`` (``"[v6]:port"`` for IPv6 literals)."""
        return _fmt_target(self.host, self.port)

    def __repr__(self) -> str:
        parts = [f"{self.target}/{self.proto} {self.state}"]
        if self.rtt_ms is not None:
            parts.append(_fmt_ms(self.rtt_ms))
        if self.address is not None and self.address != self.host:
            parts.append(f"address={self.address}")
        if self.error:
            parts.append(f"error={self.error!r}")
        return f"CheckResult({', '.join(parts)})"

    def __str__(self) -> str:
        return self.__repr__()

    def to_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The fields (and ``ok``) as a dict, ready for JSON."""
        return {
            "host": self.host,
            "address": self.address,
            "port": self.port,
            "proto": self.proto,
            "state": self.state,
            "ok": self.ok,
            "rtt_ms": self.rtt_ms,
            "error": self.error,
        }

    def to_dicts(self) -> list[dict[str, Any]]:
        """``[self.to_dict()]``, so one result exports like a list."""
        return [self.to_dict()]

    def to_json(self, *, indent: int | None = None) -> str:
        """This result as a JSON object."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self, path: Any = None) -> str:
        """This result as CSV with a header line (see :meth:`Results.to_csv`)."""
        return _Export.to_csv(self, path)  # type: ignore[arg-type]

    def to_pandas(self) -> Any:
        """This result as a one-row ``pandas.DataFrame``; needs pandas."""
        return _Export.to_pandas(self)  # type: ignore[arg-type]

    def _repr_html_(self) -> str:
        return _html_table([self.to_dict()], f"{self.target}/{self.proto}: {self.state}")


class Results(_Export, list[CheckResult]):
    """A list of :class:`CheckResult` in the order the targets were given,
    with summaries: ``open``/``closed``/``filtered``/``errors`` (sub-lists),
    ``counts`` (state -> number), ``all_ok``, and the exports
    ``to_dicts()``, ``to_json()``, ``to_csv()``, ``to_pandas()``."""

    def _where(self, state: str) -> Results:
        return Results(r for r in self if r.state == state)

    @property
    def open(self) -> Results:
        """The open results."""
        return self._where("open")

    @property
    def closed(self) -> Results:
        """The closed results."""
        return self._where("closed")

    @property
    def filtered(self) -> Results:
        """The filtered results."""
        return self._where("filtered")

    @property
    def errors(self) -> Results:
        """The results whose state is ``"error"``."""
        return self._where("error")

    @property
    def counts(self) -> dict[str, int]:
        """How many results each state has, e.g. ``{"open": 3, "closed": 5}``."""
        c: dict[str, int] = {}
        for r in self:
            c[r.state] = c.get(r.state, 0) + 1
        return c

    @property
    def all_ok(self) -> bool:
        """True when every target is open (and there is at least one)."""
        return bool(self) and all(r.ok for r in self)

    def _summary(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        return f"{len(self)} result{'s' if len(self) != 1 else ''}" + (f": {counts}" if counts else "")

    def __repr__(self) -> str:
        shown = list(self[:MAX_ROWS])
        return f"Results({self._summary()})\n" + _text_table(shown, len(self) - len(shown))

    __str__ = __repr__

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per result (see :meth:`CheckResult.to_dict`)."""
        return [r.to_dict() for r in self]

    def _repr_html_(self) -> str:
        rows = [r.to_dict() for r in self[:MAX_ROWS]]
        return _html_table(rows, self._summary(), len(self) - len(rows))

    @overload  # type: ignore[override]
    def __getitem__(self, i: SupportsIndex) -> CheckResult: ...
    @overload
    def __getitem__(self, i: slice) -> Results: ...
    def __getitem__(self, i: SupportsIndex | slice) -> CheckResult | Results:
        if isinstance(i, slice):
            return Results(list.__getitem__(self, i))
        return list.__getitem__(self, i)


class ScanReport(_Export):
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
        seen: dict[str, None] = {}
        for r in self.results:
            seen.setdefault(r.host, None)
        return list(seen)

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

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.results)

    def _summary(self) -> str:
        hosts = self.hosts
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        return (
            f"{len(hosts)} host{'s' if len(hosts) != 1 else ''} x {self.ports} "
            f"port{'s' if self.ports != 1 else ''} in {self.elapsed:.2f} s: {counts}"
        )

    def _interesting(self) -> list[CheckResult]:
        return [r for r in self.results if r.state != "closed"]

    def __repr__(self) -> str:
        rows = self._interesting()
        shown = rows[:MAX_ROWS]
        closed = self.counts.get("closed", 0)
        tail = f"\n({closed} closed ports not shown)" if closed else ""
        return f"ScanReport({self._summary()})\n" + _text_table(shown, len(rows) - len(shown)) + tail

    __str__ = __repr__

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per scanned port, closed ones included."""
        return self.results.to_dicts()

    def to_dict(self) -> dict[str, Any]:
        """A summary: hosts, ports per host, elapsed, counts and open ports by host."""
        return {
            "hosts": self.hosts,
            "ports": self.ports,
            "elapsed": self.elapsed,
            "counts": self.counts,
            "open": self.by_host(),
        }

    def _repr_html_(self) -> str:
        rows = self._interesting()
        shown = [r.to_dict() for r in rows[:MAX_ROWS]]
        closed = self.counts.get("closed", 0)
        caption = self._summary() + (f" ({closed} closed ports not shown)" if closed else "")
        return _html_table(shown, caption, len(rows) - len(shown))


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class PingStats(_Export):
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
    """

    def __init__(
        self,
        host: str,
        address: str,
        port: int,
        rtts: list[float | None],
        errors: list[str | None] | None = None,
    ) -> None:
        self.host = host
        self.address = address
        self.port = port
        self.sent = len(rtts)
        self.rtts: list[float] = [r for r in rtts if r is not None]
        self.received = len(self.rtts)
        self.errors: list[str | None] = list(errors) if errors is not None else [None] * self.sent

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
        """95th percentile (linear interpolation), ms."""
        return _percentile(sorted(self.rtts), 0.95) if self.rtts else None

    @property
    def jitter(self) -> float | None:
        """Mean absolute difference of successive rtts, ms (needs two replies)."""
        if len(self.rtts) < 2:
            return None
        return statistics.fmean(abs(b - a) for a, b in zip(self.rtts, self.rtts[1:], strict=False))

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
        """Every statistic and the rtts as a dict."""
        return {
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
        }

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
                    "rtt_ms": next(it) if err is None else None,
                    "error": err,
                }
            )
        return rows

    def _json_value(self) -> Any:
        return self.to_dict()

    def __repr__(self) -> str:
        target = _fmt_target(self.host, self.port)
        s = (
            f"PingStats({target} ({self.address}): {self.sent} sent, {self.received} received, "
            f"{self.loss_percent:.0f}% loss"
        )
        if self.rtts:
            s += f", min/avg/max/stdev = {self.min:.3f}/{self.avg:.3f}/{self.max:.3f}/"
            s += f"{self.stdev:.3f} ms" if self.stdev is not None else "- ms"
            if self.jitter is not None:
                s += f", jitter {self.jitter:.3f} ms"
        return s + ")"

    __str__ = __repr__

    def _repr_html_(self) -> str:
        d = self.to_dict()
        rows = [{"statistic": k, "value": v} for k, v in d.items() if k != "rtts"]
        return _html_table(rows, f"tcping {_fmt_target(self.host, self.port)}")
