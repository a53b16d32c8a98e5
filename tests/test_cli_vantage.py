"""Issue 14: every ``--json`` record says where it was measured from
(``vantage``: the host name, or ``--vantage NAME``), in every subcommand
that writes JSON, so ``socketkit report`` can merge many machines' output."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from peers import closed_tcp_port as closed_port
from test_cli import listening, run
from test_cli_first_hour import interrupted, json_lines, started
from test_cli_tls import tls_handler


def records(doc: Any) -> list[dict[str, Any]]:
    """The records of one JSON document: the object, or each object of an array."""
    return [doc] if isinstance(doc, dict) else [d for d in doc if isinstance(d, dict)]


def vantages(text: str) -> list[Any]:
    out = [r.get("vantage", "<missing>") for doc in json_lines(text) for r in records(doc)]
    assert out, text
    return out


@pytest.mark.parametrize("name", [None, "site-a"])
def test_every_json_record_carries_its_vantage(name: str | None, tcp_peer, tls_pki) -> None:
    want = name or socket.gethostname()
    extra = [] if name is None else ["--vantage", name]
    tls_target = f"127.0.0.1:{tcp_peer(tls_handler(tls_pki)).address[1]}"
    seen = set()
    with listening() as port:
        target = f"127.0.0.1:{port}"
        for argv in [
            ["check", target, f"127.0.0.1:{closed_port()}"],
            ["check", tls_target, "--tls", "--ca", str(tls_pki.ca.cert)],
            ["tls", tls_target, "--ca", str(tls_pki.ca.cert)],
            ["scan", "127.0.0.1", "-p", str(port)],
            ["ping", target, "-c", "2", "-i", "0"],
            ["wait", target],
            ["wait", f"127.0.0.1:{closed_port()}", "--timeout", "0.2"],
        ]:
            r = run(*argv, "--json", *extra)
            assert set(vantages(r.stdout)) == {want}, (argv, r.stdout)
            seen.add(argv[0])
    proc, line = started(["serve", "echo", "127.0.0.1:0", "--json", *extra])
    assert set(vantages(line)) == {want}
    r = run("send", json.loads(line)["listening"], "x\\n", "--until", "\\n", "--json", *extra)
    assert set(vantages(r.stdout)) == {want}
    interrupted(proc)
    proc, line = started(["listen", "127.0.0.1:0", "--udp", "--json", *extra], "stderr")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"d", ("127.0.0.1", int(line.rsplit(":", 1)[1])))
        assert proc.stdout is not None
        assert set(vantages(proc.stdout.readline())) == {want}
    interrupted(proc)
    proc, line = started(["exporter", "--listen", "127.0.0.1:0", "--json", *extra])
    assert set(vantages(line)) == {want}
    interrupted(proc)
    assert seen == {"check", "tls", "scan", "ping", "wait"}


def test_vantage_is_only_in_json_output() -> None:
    with listening() as port:
        r = run("check", f"127.0.0.1:{port}", "--vantage", "site-a")
    assert r.returncode == 0 and "site-a" not in r.stdout
