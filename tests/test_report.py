"""Issue 14: ``socketkit.report`` and ``socketkit report`` merge the JSON of
many vantage points into one table, target x vantage point."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from peers import closed_tcp_port as closed_port
from test_cli import listening, run

import socketkit
from socketkit.fleet import CELL_FIELDS


def cli_json(tmp_path: Path, name: str, *argv: str) -> Path:
    r = run(*argv, "--json")
    path = tmp_path / f"{name}.json"
    path.write_text(r.stdout)
    return path


def test_cli_outputs_of_three_vantage_points_merge_into_one_table(tmp_path: Path) -> None:
    down = f"127.0.0.1:{closed_port()}"
    with listening() as port:
        up = f"127.0.0.1:{port}"
        a = cli_json(tmp_path, "a", "check", up, down, "--vantage", "site-a")
        b = cli_json(tmp_path, "b", "scan", "127.0.0.1", "-p", str(port), "--vantage", "site-b")
        c = cli_json(tmp_path, "c", "ping", up, "-c", "2", "-i", "0", "--vantage", "site-c")
        d = cli_json(tmp_path, "d", "wait", up, "--vantage", "site-d")
    r = run("report", str(a), str(b), str(c), str(d))
    assert r.returncode == 1, r
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["TARGET", "site-a", "site-b", "site-c", "site-d"]
    assert re.match(
        rf"{re.escape(up)}\s+open [\d.]+ ms\s+open [\d.]+ ms\s+open [\d.]+ ms\s+up [\d.]+ ms$", lines[1]
    )
    assert re.match(rf"{re.escape(down)}\s+closed [\d.]+ ms\s+-\s+-\s+-$", lines[2])
    assert lines[-1] == "2 target(s) x 4 vantage point(s): 4 of 8 reached"

    doc = json.loads(run("report", str(a), str(b), "--json").stdout)
    assert set(doc) == {"targets", "vantages", "ok", "cells", "errors"}
    assert doc["ok"] is False and doc["vantages"] == ["site-a", "site-b"]
    assert all(set(cell) == set(CELL_FIELDS) for cell in doc["cells"])
    missing = [cell for cell in doc["cells"] if cell["state"] == "missing"]
    assert [(m["target"], m["vantage"]) for m in missing] == [(down, "site-b")]

    # Every vantage point reached every target: exit 0.
    r = run("report", str(b), str(c), str(d))
    assert r.returncode == 0, r.stdout
    rows = list(csv.DictReader(io.StringIO(run("report", str(b), str(c), "--csv").stdout)))
    assert [(x["target"], x["vantage"], x["state"]) for x in rows] == [
        (up, "site-b", "open"),
        (up, "site-c", "open"),
    ]
    page = run("report", str(a), "--html").stdout
    assert page.startswith("<!doctype html>") and '<td class="down"' in page and "site-a" in page


def test_the_documented_json_keys_are_the_real_ones(tmp_path: Path) -> None:
    with listening() as port:
        a = cli_json(tmp_path, "a", "check", f"127.0.0.1:{port}", "--vantage", "x")
    doc = run("report", str(a), "--help").stdout.split("--json output:", 1)[1]
    documented = {frozenset(k.strip() for k in m.split(",")) for m in re.findall(r"\{([a-z0-9_, ]+)\}", doc)}
    failed = {"failed": True, "msg": "socketkit is not installed", "vantage": "y"}
    (tmp_path / "y.json").write_text(json.dumps(failed))
    out = json.loads(run("report", str(a), str(tmp_path / "y.json"), "--json").stdout)
    seen = {frozenset(out), *(frozenset(c) for c in out["cells"]), *(frozenset(e) for e in out["errors"])}
    assert seen == documented
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for keys in re.findall(r"\{[a-z0-9_, ]+\}", doc):
        assert keys in readme, keys


def test_records_without_vantage_take_the_file_name(tmp_path: Path) -> None:
    rec = {
        "host": "db",
        "port": 5432,
        "proto": "tcp",
        "state": "open",
        "ok": True,
        "rtt_ms": 1.5,
        "error": None,
    }
    (tmp_path / "web1.json").write_text(json.dumps([rec]))
    r = socketkit.report([tmp_path / "web1.json"])
    assert r.vantages == ["web1"] and r.ok
    assert socketkit.report([[rec]], vantage="here").vantages == ["here"]


def test_module_results_and_failures() -> None:
    check = {
        "changed": False,
        "ok": False,
        "vantage": "web1",
        "results": [
            {"host": "db", "port": 5432, "proto": "tcp", "state": "open", "ok": True, "rtt_ms": 0.5},
            {"host": "cache", "port": 6379, "proto": "tcp", "state": "closed", "ok": False, "rtt_ms": 0.1},
        ],
        "invocation": {"module_args": {"targets": ["db:5432", "cache:6379"]}},
    }
    tcping = {
        "vantage": "web2",
        "results": [{"host": "db", "port": 5432, "sent": 4, "received": 3, "avg": 2.0}],
    }
    tls = {
        "vantage": "web2",
        "results": [
            {
                "host": "api",
                "port": 443,
                "state": "valid",
                "ok": True,
                "total_ms": 9.0,
                "reason": "expires soon",
            }
        ],
    }
    wait = {
        "vantage": "web3",
        "results": [{"target": "db:5432", "state": "open", "ok": True, "waited_s": 0.25}],
    }
    missing = {
        "failed": True,
        "msg": "socketkit is not installed on web4: pip install socketkit",
        "vantage": "web4",
    }
    r = socketkit.report([check, tcping, tls, wait, missing])
    assert r.vantages == ["web1", "web2", "web3", "web4"]
    assert r.targets == ["db:5432", "cache:6379", "api:443"]
    assert r.cell("db:5432", "web2").state == "lost 1/4"
    assert r.cell("api:443", "web2").ok is False and r.cell("api:443", "web2").error == "expires soon"
    assert r.cell("db:5432", "web3").rtt_ms == 250.0
    assert r.cell("db:5432", "web4").state == "missing"
    assert r.errors == {"web4": missing["msg"]}
    assert "web4: socketkit is not installed" in str(r)
    assert not r.ok and r.reached == 2
    assert "<table" in r._repr_html_()


def test_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "junk.json").write_text("not json\n")
    r = run("report", str(tmp_path / "junk.json"))
    assert r.returncode == 2 and "junk.json: line 1: not JSON" in r.stderr
    r = run("report", str(tmp_path / "absent.json"))
    assert r.returncode == 2 and "absent.json" in r.stderr
    (tmp_path / "empty.json").write_text("{}")
    r = run("report", str(tmp_path / "empty.json"))
    assert r.returncode == 2 and "no socketkit records" in r.stderr
    r = run("report", str(tmp_path / "empty.json"), "--csv", "--json")
    assert r.returncode == 2 and "one of --json, --csv and --html" in r.stderr
    with pytest.raises(ValueError, match="no socketkit records"):
        socketkit.report([{"x": 1}])
