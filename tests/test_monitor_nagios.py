"""--nagios on check and ping (issue 13): one status line whose perfdata
follows the Monitoring Plugins Development Guidelines' grammar, and their
exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad arguments too)."""

from __future__ import annotations

import re

import pytest
from _probe_util import listeners
from peers import closed_tcp_port as closed_port
from test_cli import run

# 'label'=value[UOM];[warn];[crit];[min];[max], labels quoted when they
# hold spaces (quotes doubled inside), UOM one of the guidelines' units.
_LABEL = r"(?:'(?:[^']|'')+'|[^\s'=]+)"
_NUM = r"-?\d+(?:\.\d+)?"
_PERF = re.compile(
    rf"^{_LABEL}=(?:{_NUM})(?:s|ms|us|%|B|KB|MB|TB|c)?"
    rf";(?:{_NUM})?;(?:{_NUM})?;(?:{_NUM})?;(?:{_NUM})?$"
)
_LINE = re.compile(r"^SOCKETKIT (OK|WARNING|CRITICAL|UNKNOWN) - ([^|\n]+?)(?: \| (.+))?$")
CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def plugin(*argv: str) -> tuple[str, str, list[str]]:
    """Run the CLI as a plugin; (status, text, perfdata items), checked
    against the grammar and the exit code."""
    r = run(*argv, "--nagios")
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    m = _LINE.match(lines[0])
    assert m, lines[0]
    status, text, perf = m.group(1), m.group(2), m.group(3)
    assert r.returncode == CODES[status], (r.returncode, lines[0], r.stderr)
    items = re.findall(r"'(?:[^']|'')+'=\S+|\S+", perf or "")
    for item in items:
        assert _PERF.match(item), item
    return status, text, items


def test_check_ok_warning_critical() -> None:
    with listeners(1) as (port,):
        status, text, perf = plugin("check", f"127.0.0.1:{port}", "-w", "0.5", "-c", "1")
        assert status == "OK" and f"127.0.0.1:{port} open" in text
        assert len(perf) == 1 and re.match(r"^time=\d+\.\d+s;0\.5;1;0;$", perf[0]), perf
        # Every real handshake takes more than 0 s: over the thresholds.
        assert plugin("check", f"127.0.0.1:{port}", "-w", "0")[0] == "WARNING"
        assert plugin("check", f"127.0.0.1:{port}", "-w", "0", "--critical", "0")[0] == "CRITICAL"
        closed = closed_port()
        status, text, perf = plugin("check", f"127.0.0.1:{port}", f"127.0.0.1:{closed}")
    assert status == "CRITICAL" and text.startswith("1 of 2 not OK")
    assert perf == [p for p in perf if p.startswith(f"'time 127.0.0.1:{port}'=")] and len(perf) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "127.0.0.1:1", "--timeout", "soon"],
        ["check", "127.0.0.1:1", "--no-such-option"],
        ["check", "127.0.0.1:0"],
        ["check", "-w", "-1", "127.0.0.1:1"],
        ["ping", "127.0.0.1:1", "-c", "0"],
        ["ping", "http://example.com:80/"],
    ],
)
def test_bad_arguments_are_unknown(argv: list[str]) -> None:
    status, text, perf = plugin(*argv)
    assert status == "UNKNOWN" and text and perf == []


def test_ping_ok_and_critical() -> None:
    with listeners(1) as (port,):
        status, text, perf = plugin(
            "ping", f"127.0.0.1:{port}", "-c", "3", "-i", "0", "-w", "1", "--critical", "2"
        )
    assert status == "OK" and "3 sent, 3 received, 0% loss" in text
    assert [p.split("=")[0] for p in perf] == ["time", "loss", "rtmin", "rtmax"]
    assert perf[0].endswith("s;1;2;0;") and perf[1] == "loss=0%;;;0;100"
    status, text, perf = plugin("ping", f"127.0.0.1:{closed_port()}", "-i", "0")
    assert status == "CRITICAL" and "4 sent, 0 received, 100% loss" in text
    assert perf == ["loss=100%;;;0;100"]


def test_nagios_is_documented_in_help() -> None:
    for sub in ("check", "ping"):
        text = run(sub, "--help").stdout
        assert "--nagios" in text and "3 UNKNOWN" in text
