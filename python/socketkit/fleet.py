"""One report from many vantage points: :func:`report` merges the JSON of
``socketkit check/scan/tls/ping/wait --json`` and of the ``socketkit.net``
Ansible modules, run from many machines, into one table of target x
vantage point (state and latency).

Each record says where it was measured from (``vantage``); a record that
does not inherits it from the object holding it (a scan's ``results``, a
module's ``results``), else takes the file's name (its stem). A vantage
point whose module failed before measuring anything (socketkit missing on
that host) is listed with its message, and has reached nothing.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socketkit._format import fmt_ms, fmt_target, round_floats, text_table

__all__ = ["CELL_FIELDS", "FleetCell", "FleetReport", "report"]

#: The keys of each cell of :meth:`FleetReport.to_dicts` (and of ``--csv``).
CELL_FIELDS = ("target", "vantage", "state", "ok", "rtt_ms", "error")

#: The state of a target a vantage point has no record of.
MISSING = "missing"

#: Keys of an Ansible result that hold the module's arguments, not results.
_SKIP = frozenset({"invocation", "module_args", "diff"})


@dataclass(frozen=True)
class FleetCell:
    """What one vantage point measured of one target."""

    target: str
    vantage: str
    state: str
    ok: bool
    rtt_ms: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in CELL_FIELDS}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _target(doc: Mapping[str, Any]) -> str:
    t = fmt_target(str(doc["host"]), int(doc["port"]))
    return f"{t}/udp" if doc.get("proto") == "udp" else t


def _ping_cell(doc: Mapping[str, Any], vantage: str) -> FleetCell:
    sent, received = int(doc.get("sent") or 0), int(doc.get("received") or 0)
    ok = sent > 0 and received == sent
    state = "open" if ok else ("closed" if received == 0 else f"lost {sent - received}/{sent}")
    return FleetCell(_target(doc), vantage, state, ok, _num(doc.get("avg")), doc.get("error"))


def _check_cell(doc: Mapping[str, Any], vantage: str) -> FleetCell:
    # A tls record's "reason" is why it fails the check (expiring soon
    # included); a check's latency is rtt_ms, a TLS check's its total time.
    reason = doc.get("reason")
    rtt = _num(doc.get("rtt_ms"))
    if rtt is None:
        rtt = _num(doc.get("total_ms"))
    ok = bool(doc.get("ok")) and not reason
    return FleetCell(_target(doc), vantage, str(doc.get("state")), ok, rtt, reason or doc.get("error"))


def _wait_cells(doc: Mapping[str, Any], vantage: str) -> Iterator[FleetCell]:
    waited = _num(doc.get("waited_s"))
    ms = None if waited is None else waited * 1000
    if "target" in doc:  # the wait module: one record per target
        ok = bool(doc.get("ok"))
        yield FleetCell(str(doc["target"]), vantage, str(doc.get("state")), ok, ms, doc.get("error"))
        return
    # The CLI's wait: one record for all; a timeout does not say which.
    for t in doc.get("targets") or []:
        ok = bool(doc.get("ok"))
        yield FleetCell(str(t), vantage, "up" if ok else "timeout", ok, ms, doc.get("error"))


def _walk(doc: Any, vantage: str) -> Iterator[FleetCell | tuple[str, str]]:
    """Cells (and ``(vantage, msg)`` for a vantage point that failed) of
    one JSON document, whatever socketkit wrote it."""
    if isinstance(doc, list):
        for d in doc:
            yield from _walk(d, vantage)
        return
    if not isinstance(doc, Mapping):
        return
    v = str(doc["vantage"]) if isinstance(doc.get("vantage"), str) else vantage
    if "host" in doc and "port" in doc:
        if "seq" in doc:
            return  # a ping probe: its summary line counts it
        yield _ping_cell(doc, v) if "sent" in doc and "received" in doc else _check_cell(doc, v)
        return
    if "waited_s" in doc and ("targets" in doc or "target" in doc):
        yield from _wait_cells(doc, v)
        return
    if doc.get("failed") and "msg" in doc and not doc.get("results"):
        yield (v, str(doc["msg"]))
        return
    for k, sub in doc.items():
        if k not in _SKIP and isinstance(sub, list | Mapping):
            yield from _walk(sub, v)


def _documents(text: str, source: str) -> list[Any]:
    """One JSON document, or JSON lines (``ping --json``)."""
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        pass
    docs = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{source}: line {n}: not JSON ({e.msg})") from None
    return docs


class FleetReport:
    """Targets x vantage points: what each vantage point measured of each
    target. ``ok`` only when every vantage point reached every target."""

    def __init__(self, cells: Iterable[FleetCell], errors: Mapping[str, str] | None = None) -> None:
        self.errors: dict[str, str] = dict(errors or {})
        self.targets: list[str] = []
        self.vantages: list[str] = []
        self._cells: dict[tuple[str, str], FleetCell] = {}
        for c in cells:
            if c.target not in self.targets:
                self.targets.append(c.target)
            if c.vantage not in self.vantages:
                self.vantages.append(c.vantage)
            old = self._cells.get((c.target, c.vantage))
            # Several records of one target from one place (a name with
            # several addresses, two runs): the cell is up only if all are.
            if old is None or (old.ok and not c.ok):
                self._cells[c.target, c.vantage] = c
        for v in self.errors:
            if v not in self.vantages:
                self.vantages.append(v)

    def cell(self, target: str, vantage: str) -> FleetCell:
        """What ``vantage`` measured of ``target`` (state ``"missing"`` when nothing)."""
        found = self._cells.get((target, vantage))
        if found is not None:
            return found
        return FleetCell(target, vantage, MISSING, False, None, self.errors.get(vantage))

    @property
    def ok(self) -> bool:
        return bool(self.targets) and not self.errors and all(c.ok for c in self)

    @property
    def reached(self) -> int:
        """How many (target, vantage point) pairs were reached."""
        return sum(c.ok for c in self)

    def __iter__(self) -> Iterator[FleetCell]:
        for t in self.targets:
            for v in self.vantages:
                yield self.cell(t, v)

    def __len__(self) -> int:
        return len(self.targets) * len(self.vantages)

    def summary(self) -> str:
        return (
            f"{len(self.targets)} target(s) x {len(self.vantages)} vantage point(s): "
            f"{self.reached} of {len(self)} reached"
        )

    def __repr__(self) -> str:
        return f"<FleetReport {self.summary()}>"

    def __str__(self) -> str:
        def text(c: FleetCell) -> str:
            if c.state == MISSING:
                return "-"
            return f"{c.state} {fmt_ms(c.rtt_ms)}" if c.rtt_ms is not None else c.state

        rows = [[t, *(text(self.cell(t, v)) for v in self.vantages)] for t in self.targets]
        lines = [text_table(["TARGET", *self.vantages], rows)]
        lines += [f"{v}: {msg}" for v, msg in self.errors.items()]
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per target and vantage point (keys: :data:`CELL_FIELDS`)."""
        return [c.to_dict() for c in self]

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": list(self.targets),
            "vantages": list(self.vantages),
            "ok": self.ok,
            "cells": self.to_dicts(),
            "errors": [{"vantage": v, "msg": m} for v, m in self.errors.items()],
        }

    def to_json(self, **kw: Any) -> str:
        return json.dumps(round_floats(self.to_dict()), **kw)

    def to_csv(self) -> str:
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=CELL_FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(round_floats(self.to_dicts()))
        return out.getvalue()

    def to_html(self) -> str:
        """An HTML table (``class="socketkit"``): a row per target, a column
        per vantage point, each cell classed ``ok`` or ``down``."""
        e = html.escape
        out = ['<table class="socketkit fleet">', f"<caption>{e(self.summary())}</caption>"]
        out.append("<thead><tr><th>target</th>" + "".join(f"<th>{e(v)}</th>" for v in self.vantages))
        out.append("</tr></thead><tbody>")
        for t in self.targets:
            out.append(f"<tr><th>{e(t)}</th>")
            for v in self.vantages:
                c = self.cell(t, v)
                rtt = "" if c.rtt_ms is None else f" {c.rtt_ms:.3f} ms"
                title = f' title="{e(c.error)}"' if c.error else ""
                out.append(f'<td class="{"ok" if c.ok else "down"}"{title}>{e(c.state)}{rtt}</td>')
            out.append("</tr>")
        out.append("</tbody></table>")
        out += [f'<p class="socketkit down">{e(v)}: {e(m)}</p>' for v, m in self.errors.items()]
        return "".join(out)

    def _repr_html_(self) -> str:
        return self.to_html()


Source = str | os.PathLike[str] | Mapping[str, Any] | list[Any]


def report(paths_or_records: Source | Iterable[Source], *, vantage: str | None = None) -> FleetReport:
    """Merge what many vantage points measured into one :class:`FleetReport`.

    ``paths_or_records``: a path (or several) to the JSON that
    ``socketkit check/scan/tls/ping/wait --json`` or a ``socketkit.net``
    module wrote (one document or JSON lines), or such documents already
    parsed (dicts, lists). A record without ``vantage`` takes ``vantage``,
    else its file's stem (``"-"`` for a parsed record). Raises
    ``ValueError`` for a file that is not JSON or holds no socketkit record,
    ``OSError`` for one that cannot be read.
    """
    if isinstance(paths_or_records, str | os.PathLike | Mapping):
        sources: list[Any] = [paths_or_records]
    else:
        sources = list(paths_or_records)
    cells: list[FleetCell] = []
    errors: dict[str, str] = {}
    for src in sources:
        if isinstance(src, str | os.PathLike):
            name = os.fspath(src)
            docs = _documents(Path(name).read_text(), name)
            default = vantage or Path(name).stem
        else:
            name, docs, default = "record", [src], vantage or "-"
        found = list(_walk(docs, default))
        if not found:
            raise ValueError(f"{name}: no socketkit records (check, scan, tls, ping, wait or socketkit.net)")
        for item in found:
            if isinstance(item, FleetCell):
                cells.append(item)
            else:
                errors.setdefault(*item)
    return FleetReport(cells, errors)
