"""Presentation: one formatting module (socketkit._format) behind the
result reprs, exports and the CLI tables (issue 10, item 5). No network:
results are built by hand, and the CLI is run in-process with the probe
functions replaced."""

from __future__ import annotations

import csv
import io
import json
import math
import pickle
import re
import statistics
from pathlib import Path

import pytest

import socketkit
from socketkit import CheckResult, PingStats, Results, ScanReport, cli
from socketkit._format import MAX_ROWS, Export, fmt_ms, fmt_ms_series, fmt_target

V6_OPEN = CheckResult("::1", "::1", 8080, "tcp", "open", 12.34567, None)
NAMED = CheckResult("db.internal", "10.0.0.7", 5432, "tcp", "open", 0.41234, None)
CLOSED = CheckResult("127.0.0.1", "127.0.0.1", 9, "tcp", "closed", None, "connection refused")
NO_NAME = CheckResult("nope.invalid", None, 80, "tcp", "error", None, "name does not resolve")
ROWS = [V6_OPEN, NAMED, CLOSED, NO_NAME]


def test_fmt_values() -> None:
    assert fmt_ms(None) == "-"
    assert fmt_ms(0.0412) == "0.041 ms"
    assert fmt_ms(12.34567) == "12.346 ms"
    assert fmt_ms_series([0.067, 0.105, 0.144, None]) == "0.067/0.105/0.144/- ms"
    assert fmt_target("127.0.0.1", 80) == "127.0.0.1:80"
    assert fmt_target("::1", 80) == "[::1]:80"
    assert fmt_target("db.internal", 5432) == "db.internal:5432"


def test_cli_and_results_format_targets_and_times_alike() -> None:
    for r in ROWS:
        assert cli._target_text(r) == r.target == fmt_target(r.host, r.port)
    assert "[::1]:8080/tcp open, 12.346 ms" in repr(V6_OPEN)


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_cli_check_table_matches_the_results_repr(monkeypatch, capsys) -> None:
    monkeypatch.setattr(socketkit, "check_many", lambda targets, **kw: Results(ROWS))
    assert cli.main(["check", "[::1]:8080", "db.internal:5432", "127.0.0.1:9", "nope.invalid:80"]) == 1
    out = capsys.readouterr().out.splitlines()
    # One vocabulary (issue 17): the CLI's table is the repr's table.
    assert _cells(out[0]) == ["TARGET", "ADDRESS", "PROTO", "STATE", "RTT", "ERROR"]
    text = repr(Results(ROWS)).splitlines()
    assert _cells(text[1]) == ["TARGET", "ADDRESS", "PROTO", "STATE", "RTT", "ERROR"]
    for r, cli_line, repr_line in zip(ROWS, out[1:], text[2:], strict=True):
        target, address, proto, state, time_text, *error = _cells(cli_line)
        assert (target, address, proto, state) == (r.target, r.address or "-", "tcp", r.state)
        assert time_text == fmt_ms(r.rtt_ms)
        assert _cells(repr_line) == [target, address, "tcp", state, time_text, *error]


def test_cli_scan_table_and_summary(monkeypatch, capsys) -> None:
    report = ScanReport([NAMED, CLOSED], ports=2, elapsed=0.25)
    monkeypatch.setattr(socketkit, "scan", lambda *a, **kw: report)
    assert cli.main(["scan", "db.internal", "-p", "9,5432"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert _cells(out[0]) == ["HOST", "ADDRESS", "PORT", "PROTO", "STATE", "RTT"]
    assert _cells(out[1]) == ["db.internal", "10.0.0.7", "5432", "tcp", "open", "0.412 ms"]
    assert out[-2] == "Not shown: 1 closed port (--all lists them)"
    assert out[-1] == "scanned 2 host(s), 2 port(s) in 0.25 s: 1 closed, 1 open"
    assert "2 hosts x 2 ports in 0.25 s: 1 closed, 1 open" in repr(report)


def test_results_json_and_csv_round_trip(tmp_path: Path) -> None:
    res = Results(ROWS)
    assert json.loads(res.to_json()) == res.to_dicts()
    assert json.loads(res.to_json(indent=2)) == res.to_dicts()
    text = res.to_csv()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [list(r) for r in rows] == [list(d) for d in res.to_dicts()]
    for row, d in zip(rows, res.to_dicts(), strict=True):
        assert row == {k: "" if v is None else str(v) for k, v in d.items()}
    path = tmp_path / "out.csv"
    assert res.to_csv(path) == text
    assert path.read_text(encoding="utf-8") == text
    buf = io.StringIO()
    assert res.to_csv(buf) == text and buf.getvalue() == text
    assert Results().to_csv() == "host,address,port,proto,state,ok,rtt_ms,error\n"
    assert Results().to_json() == "[]"


def test_single_and_report_exports() -> None:
    one = json.loads(V6_OPEN.to_json())
    assert one == V6_OPEN.to_dict() and one["ok"] is True
    assert V6_OPEN.to_dicts() == [V6_OPEN.to_dict()]
    assert V6_OPEN.to_csv().splitlines()[1] == "::1,::1,8080,tcp,open,True,12.34567,"
    report = ScanReport(ROWS, ports=1, elapsed=0.1)
    assert json.loads(report.to_json()) == Results(ROWS).to_dicts()
    assert report.to_csv() == Results(ROWS).to_csv()
    for obj in (V6_OPEN, Results(ROWS), report, PingStats("h", "a", 1, [1.0])):
        assert isinstance(obj, Export)


def test_check_result_is_still_a_named_tuple() -> None:
    assert isinstance(V6_OPEN, tuple) and not hasattr(V6_OPEN, "__dict__")
    # Issue 11 appended the service-check fields, with defaults: the first
    # seven are where they were, and seven values still make a result.
    assert CheckResult._fields == (
        "host",
        "address",
        "port",
        "proto",
        "state",
        "rtt_ms",
        "error",
        "timings",
        "captures",
        "failed_step",
        "received",
        "tls",
    )
    host, address, port, *_ = V6_OPEN
    assert (host, address, port) == ("::1", "::1", 8080)
    assert V6_OPEN[:7] == ("::1", "::1", 8080, "tcp", "open", 12.34567, None)
    assert V6_OPEN == ("::1", "::1", 8080, "tcp", "open", 12.34567, None, None, None, None, None, None)
    assert CheckResult._make(tuple(NAMED)[:7]) == NAMED
    assert type(V6_OPEN._replace(port=1)) is CheckResult
    assert CheckResult._make(tuple(NAMED)) == NAMED
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(V6_OPEN, proto))
        assert back == V6_OPEN and type(back) is CheckResult
    assert str(V6_OPEN) == repr(V6_OPEN)


def test_html_escapes_and_cuts_long_tables() -> None:
    nasty = CheckResult("<b>&", None, 1, "tcp", "error", None, '"quoted" <x>')
    html = nasty._repr_html_()
    assert "<b>&" not in html and "&lt;b&gt;&amp;" in html and "&quot;quoted&quot;" in html
    many = Results([CLOSED] * (MAX_ROWS + 5))
    html = many._repr_html_()
    assert html.count("<tr><td>") == MAX_ROWS and "... 5 more" in html
    assert repr(many).endswith("... 5 more")
    assert "12.346" in V6_OPEN._repr_html_()


def _numpy_linear(values: list[float], q: float) -> float:
    """The percentile PingStats.p95 computed by hand before statistics.quantiles."""
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def test_ping_statistics_keep_their_values() -> None:
    samples = [[0.5], [1.0, 2.0], [3.0, 1.0, 2.0], [float(i) for i in range(1, 21)]]
    samples += [[((i * 7919) % 97) / 13 for i in range(n)] for n in range(2, 40)]
    for rtts in samples:
        s = PingStats("h", "a", 1, list(rtts))
        assert s.p95 == pytest.approx(_numpy_linear(rtts, 0.95), rel=1e-12, abs=0)
        assert s.median == statistics.median(rtts)
    assert PingStats("h", "a", 1, [float(i) for i in range(1, 21)]).p95 == 19.05
    assert PingStats("h", "a", 1, [1.0, 2.0, 4.0]).jitter == 1.5
    assert PingStats("h", "a", 1, [None]).p95 is None
    assert repr(PingStats("::1", "::1", 22, [1.0, 2.0, 4.0])) == (
        "PingStats([::1]:22 (::1): 3 sent, 3 received, 0% loss, "
        "min/avg/max/stdev = 1.000/2.333/4.000/1.528 ms, jitter 1.500 ms)"
    )
    assert repr(PingStats("h", "a", 1, [1.0, None])).endswith("min/avg/max/stdev = 1.000/1.000/1.000/- ms)")


def test_ping_stats_exports_lost_pings_without_reasons() -> None:
    s = PingStats("h", "1.2.3.4", 80, [1.0, None, 2.0])
    assert s.errors == [None, "no reply", None]
    assert [r["rtt_ms"] for r in s.to_dicts()] == [1.0, None, 2.0]
    assert s.to_csv().splitlines()[2] == "h,1.2.3.4,80,2,,no reply"
    assert json.loads(s.to_json())["rtts"] == [1.0, 2.0]
    assert PingStats("h", "a", 1, []).to_csv() == "host,address,port,seq,rtt_ms,error\n"
