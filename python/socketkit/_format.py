"""Presentation, in one place: how socketkit writes a time, a target, a
table (text for terminals and the CLI, HTML for Jupyter), a summary of
states, and the JSON/CSV/pandas exports every result type shares.

``results.py`` (reprs, exports) and ``cli.py`` (tables for people) both
format through here, so a result reads the same in a notebook, a log and a
terminal.
"""

from __future__ import annotations

import csv
import html
import importlib
import io
import json
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, Self, SupportsIndex, TypeVar, overload

__all__ = [
    "CHECK_FIELDS",
    "COLUMNS",
    "DECIMALS",
    "MAX_ROWS",
    "PING_SUMMARY_FIELDS",
    "TIMING_FIELDS",
    "Export",
    "check_extra",
    "fmt_bytes",
    "fmt_counts",
    "fmt_ms",
    "fmt_ms_series",
    "fmt_target",
    "html_table",
    "plural",
    "result_table",
    "round_floats",
    "target_of",
    "text_table",
]

#: Rows an HTML table or text table shows before it says "... N more".
MAX_ROWS = 200

#: The columns of a check-like result, in ``to_dict()`` order.
CHECK_FIELDS = ("host", "address", "port", "proto", "state", "ok", "rtt_ms", "error")

#: The keys of ``PingStats.to_dict()`` (the CLI's ping summary).
PING_SUMMARY_FIELDS = (
    "host",
    "address",
    "port",
    "sent",
    "received",
    "loss",
    "loss_percent",
    "min",
    "avg",
    "max",
    "stdev",
    "median",
    "p95",
    "jitter",
    "rtts",
    "uptime_s",
    "downtime_s",
    "longest_up",
    "longest_down",
    "address_changes",
)

#: Decimals every exported float keeps: times are in milliseconds, so 6 is
#: a nanosecond, finer than any clock socketkit reads, and no float noise
#: (``0.12519000000000002``) reaches JSON, CSV or pandas.
DECIMALS = 6


class _Probed(Protocol):
    """What a table row needs of a result (``CheckResult`` has it all)."""

    @property
    def host(self) -> str: ...
    @property
    def address(self) -> str | None: ...
    @property
    def port(self) -> int: ...
    @property
    def proto(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def rtt_ms(self) -> float | None: ...
    @property
    def error(self) -> str | None: ...


# --- values ------------------------------------------------------------------


def fmt_ms(v: float | None) -> str:
    """A time in milliseconds: ``"0.412 ms"``, ``"-"`` when there is none.
    Three decimals everywhere, as ping(8) and the CLI print them, so columns
    of loopback times (tens of microseconds) still compare."""
    return "-" if v is None else f"{v:.3f} ms"


def fmt_ms_series(values: Iterable[float | None]) -> str:
    """Several times under one unit, ping(8)'s summary style:
    ``"0.067/0.105/0.144/- ms"`` (``-`` where there is no value)."""
    return "/".join("-" if v is None else f"{v:.3f}" for v in values) + " ms"


def fmt_target(host: str, port: int) -> str:
    """``"host:port"``, and ``"[v6]:port"`` for an IPv6 literal: the form
    every ``address`` argument accepts back."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def target_of(r: _Probed) -> str:
    """:func:`fmt_target` of a result's host and port."""
    return fmt_target(r.host, r.port)


def fmt_bytes(data: bytes) -> str:
    """Bytes as text for a terminal or JSON: UTF-8, other bytes as ``\\xNN``."""
    return data.decode("utf-8", "backslashreplace")


def round_floats(value: Any) -> Any:
    """``value`` with every float in it (through dicts and lists) rounded
    to :data:`DECIMALS`; NaN and infinities as they are."""
    if isinstance(value, float):
        return round(value, DECIMALS) if value == value and abs(value) != float("inf") else value
    if isinstance(value, dict):
        return {k: round_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_floats(v) for v in value]
    return value


def plural(n: int, word: str) -> str:
    """``"1 host"``, ``"3 hosts"``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def fmt_counts(counts: Mapping[str, int]) -> str:
    """``{"open": 1, "closed": 20}`` as ``"20 closed, 1 open"`` (states by
    name, so the order does not depend on which answered first)."""
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if n)


#: The phases of ``timings``, in order.
TIMING_FIELDS = ("resolve_ms", "connect_ms", "tls_ms", "dialogue_ms", "total_ms")


def check_extra(r: Any) -> dict[str, Any]:
    """The export columns a service check adds to the eight of a port check:
    its timings (flat, one column per phase), and its captures, failed step,
    bytes received and TLS outcome. A plain port check (no TLS, no dialogue)
    adds none, so the schema that pipelines already read stays as it was."""
    t = r.timings
    service = (
        r.tls is not None
        or r.failed_step is not None
        or r.captures is not None
        or (t is not None and (t.get("tls_ms") is not None or t.get("dialogue_ms") is not None))
    )
    if not service:
        return {}
    out: dict[str, Any] = {k: (t or {}).get(k) for k in TIMING_FIELDS}
    out["captures"] = (
        None if r.captures is None else [None if c is None else fmt_bytes(c) for c in r.captures]
    )
    out["failed_step"] = r.failed_step
    out["received"] = None if r.received is None else fmt_bytes(r.received)
    tls = r.tls
    out["tls_version"] = None if tls is None else tls.version
    out["tls_verified"] = None if tls is None else tls.verified
    out["tls_verify_error"] = None if tls is None else tls.verify_error
    return out


def _union_keys(rows: Sequence[Mapping[str, Any]], default: Sequence[str]) -> list[str]:
    """Every key of ``rows`` in order of first appearance (rows of one table
    may differ: a service check adds columns a failed connect lacks)."""
    if not rows:
        return list(default)
    seen: dict[str, None] = {}
    for r in rows:
        seen.update(dict.fromkeys(r))
    return list(seen)


# --- tables ------------------------------------------------------------------


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], more: int = 0) -> str:
    """Left-aligned columns two spaces apart, no trailing blanks, and a last
    line ``... N more`` when rows were left out."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]
    ]
    if more:
        lines.append(f"... {more} more")
    return "\n".join(lines)


#: Column name -> (header, cell) for tables of check-like results.
COLUMNS: dict[str, tuple[str, Callable[[_Probed], str]]] = {
    "target": ("TARGET", target_of),
    "host": ("HOST", lambda r: r.host),
    "address": ("ADDRESS", lambda r: r.address or "-"),
    "port": ("PORT", lambda r: str(r.port)),
    "proto": ("PROTO", lambda r: r.proto),
    "state": ("STATE", lambda r: r.state),
    "rtt": ("RTT", lambda r: fmt_ms(r.rtt_ms)),
    "time": ("RTT", lambda r: fmt_ms(r.rtt_ms)),  # the old name of "rtt"
    "error": ("ERROR", lambda r: r.error or ""),
}


def result_table(
    results: Iterable[_Probed],
    columns: Sequence[str] = ("target", "address", "proto", "state", "rtt", "error"),
    more: int = 0,
) -> str:
    """A text table of results, one row each, with the ``columns`` named
    (keys of :data:`COLUMNS`)."""
    cols = [COLUMNS[c] for c in columns]
    rows = [[cell(r) for _, cell in cols] for r in results]
    return text_table([head for head, _ in cols], rows, more)


def _html_cell(column: str, v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        # Milliseconds to the microsecond, as the text tables print them.
        return f"{v:.3f}"
    if isinstance(v, list):
        return ", ".join(_html_cell(column, x) for x in v)
    return str(v)


def html_table(
    rows: Sequence[Mapping[str, Any]],
    caption: str,
    more: int = 0,
    columns: Sequence[str] = CHECK_FIELDS,
) -> str:
    """An HTML table (``class="socketkit"``) of dict rows, everything escaped;
    with no rows, the caption as a sentence (an empty table says less).
    ``columns`` orders the header (rows may add columns of their own)."""
    if not rows:
        return f'<p class="socketkit">{html.escape(caption)}</p>'
    cols = _union_keys(rows, columns)
    out = ['<table class="socketkit">', f"<caption>{html.escape(caption)}</caption>", "<thead><tr>"]
    out += [f"<th>{html.escape(c)}</th>" for c in cols]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>")
        out += [f"<td>{html.escape(_html_cell(c, r.get(c)))}</td>" for c in cols]
        out.append("</tr>")
    if more:
        out.append(f'<tr><td colspan="{len(cols)}">... {more} more</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


# --- exports -----------------------------------------------------------------


class Export:
    """The exports every result type has, written once.

    A subclass says what its rows are (``to_dicts()``) and what its HTML
    table shows (``_html()``); ``_json_value()`` is what ``to_json()``
    writes (the rows, unless a subclass is one record). No instance state,
    so a named tuple can take it as a second base.
    """

    __slots__ = ()

    #: The CSV and HTML header when there are no rows.
    _columns: ClassVar[Sequence[str]] = CHECK_FIELDS

    @abstractmethod
    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (each result type says what a row is)."""

    @abstractmethod
    def _html(self) -> tuple[list[dict[str, Any]], str, int]:
        """The HTML table: rows shown, caption, how many rows were left out."""

    def _json_value(self) -> Any:
        return self.to_dicts()

    def to_json(self, *, indent: int | None = None) -> str:
        """The rows of :meth:`to_dicts` as a JSON array (a JSON object for a
        single record such as one ``CheckResult`` or ``PingStats``)."""
        return json.dumps(self._json_value(), indent=indent)

    def to_csv(self, path: Any = None) -> str:
        """The rows as CSV with a header line. Writes to ``path`` (a file
        name or a text file object) when given; always returns the text."""
        rows = self.to_dicts()
        buf = io.StringIO()
        fields = _union_keys(rows, self._columns)
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", restval="")
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

    def _repr_html_(self) -> str:
        rows, caption, more = self._html()
        return html_table(rows, caption, more, self._columns)


class _Row(Protocol):
    """What a result list needs of its results."""

    @property
    def state(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    def to_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=_Row)


class ResultList(Export, list[R]):
    """A list of results with what every result list has, written once:
    ``counts``, ``all_ok``, the exports, and slices and sub-lists that keep
    the list's own type."""

    def _where(self, keep: Callable[[R], bool]) -> Self:
        return type(self)(r for r in self if keep(r))

    @property
    def counts(self) -> dict[str, int]:
        """How many results each state has, e.g. ``{"open": 3, "closed": 5}``."""
        return dict(Counter(r.state for r in self))

    @property
    def all_ok(self) -> bool:
        """True when every result is ok (a check: open; a TLS check: valid)
        and there is at least one."""
        return bool(self) and all(r.ok for r in self)

    def _summary(self) -> str:
        counts = fmt_counts(self.counts)
        return plural(len(self), "result") + (f": {counts}" if counts else "")

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per result (its ``to_dict()``)."""
        return [r.to_dict() for r in self]

    def _html(self) -> tuple[list[dict[str, Any]], str, int]:
        rows = [r.to_dict() for r in self[:MAX_ROWS]]
        return rows, self._summary(), len(self) - len(rows)

    @overload
    def __getitem__(self, i: SupportsIndex) -> R: ...
    @overload
    def __getitem__(self, i: slice) -> Self: ...
    def __getitem__(self, i: SupportsIndex | slice) -> R | Self:
        if isinstance(i, slice):
            return type(self)(list.__getitem__(self, i))
        return list.__getitem__(self, i)
