"""`socketkit tls` (issue 11's CLI), driven through a subprocess as an ops
script would: nginx's TLS ports with a valid, expired, wrongly named and
self-signed certificate, postfix's STARTTLS (tls_fixtures.py)."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable

import pytest
from peers import TcpPeer, closed_tcp_port, needs_ipv6
from test_cli import one_line_error, run


def tls_handler(pki) -> Callable[[socket.socket], None]:
    """A stdlib TLS server's connection handler (tls_pki's valid certificate):
    the handshake, then close."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.valid.chain, pki.valid.key)

    def handle(conn: socket.socket) -> None:
        try:
            with ctx.wrap_socket(conn, server_side=True) as s:
                s.recv(1)
        except OSError:
            pass  # a client that hung up after the handshake

    return handle


def target(svc, kind: str) -> str:
    return f"localhost:{svc.ports[kind]}"


def test_a_valid_certificate_exits_0_with_its_facts(nginx_tls, tls_pki):
    r = run("tls", target(nginx_tls, "valid"), "--ca", str(tls_pki.ca.cert))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stderr == ""
    head, row = r.stdout.splitlines()
    assert head.split()[:4] == ["TARGET", "STATE", "DAYS", "LEFT"]
    assert row.split()[:2] == [target(nginx_tls, "valid"), "valid"]
    assert float(row.split()[2]) > 360
    for fact in ("localhost", "socketkit test CA", "127.0.0.1", "TLSv1."):
        assert fact in row, (fact, row)
    not_after = tls_pki.valid.not_after.strftime("%Y-%m-%d %H:%M UTC")
    assert not_after in row


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("expired", "certificate expired"),
        ("wrong_name", "hostname mismatch"),
        ("self_signed", "self-signed"),
    ],
)
def test_an_invalid_certificate_exits_1_with_one_line_why(nginx_tls, tls_pki, kind, why):
    r = run("tls", target(nginx_tls, kind), "--ca", str(tls_pki.ca.cert))
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"socketkit tls: {target(nginx_tls, kind)}: {why}"), lines
    # The facts are printed all the same.
    row = r.stdout.splitlines()[1]
    cn = nginx_tls.extra["certs"][kind].subject.split(",")[0].removeprefix("CN=")
    assert "invalid" in row and f"  {cn}  " in row, row


def test_unknown_issuer_without_ca_and_one_line_per_failing_target(nginx_tls, tls_pki):
    targets = [target(nginx_tls, k) for k in ("valid", "expired", "valid_ec")]
    r = run("tls", *targets, f"127.0.0.1:{closed_tcp_port()}")
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 4, lines
    assert lines[0] == f"socketkit tls: {targets[0]}: unknown issuer"
    assert "certificate expired" in lines[1]
    assert lines[3].endswith(": closed")
    assert len(r.stdout.splitlines()) == 5  # the header and a row per target, in order


def test_insecure_accepts_trust_and_name_but_not_expiry(nginx_tls):
    for kind in ("self_signed", "wrong_name", "valid"):
        r = run("tls", target(nginx_tls, kind), "--insecure")
        assert r.returncode == 0, (kind, r.stdout, r.stderr)
        # Still the facts, and why it would not verify.
        row = r.stdout.splitlines()[1]
        assert (
            "invalid" in row
            and "TLSv1." in row
            and ("self-signed" in row or "unknown issuer" in row or "hostname" in row)
        )
    r = run("tls", target(nginx_tls, "expired"), "-k")
    assert r.returncode == 1 and "certificate expired" in r.stderr


def test_warn_days(nginx_tls, tls_pki):
    ca = str(tls_pki.ca.cert)
    assert run("tls", target(nginx_tls, "valid"), "--ca", ca, "--warn-days", "30").returncode == 0
    r = run("tls", target(nginx_tls, "valid"), "--ca", ca, "--warn-days", "400")
    assert r.returncode == 1
    assert "certificate expires in 36" in r.stderr and "within --warn-days 400" in r.stderr


def test_starttls_smtp_against_postfix(smtp_server, tls_pki):
    r = run(
        "tls",
        f"localhost:{smtp_server.ports['smtp']}",
        "--starttls",
        "smtp",
        "--ca",
        str(tls_pki.ca.cert),
        "--timeout",
        "10",
        "--json",
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    (doc,) = json.loads(r.stdout)
    assert doc["state"] == "valid" and doc["reason"] is None
    assert doc["sha256"] == tls_pki.valid.sha256
    assert doc["sans"] == ["localhost", "127.0.0.1", "::1"]


def test_json_records(nginx_tls, tls_pki):
    r = run(
        "tls",
        target(nginx_tls, "valid"),
        target(nginx_tls, "expired"),
        "--ca",
        str(tls_pki.ca.cert),
        "--json",
    )
    assert r.returncode == 1
    valid, expired = json.loads(r.stdout)
    assert (valid["state"], valid["ok"], valid["reason"]) == ("valid", True, None)
    assert valid["days_left"] > 360 and valid["not_after"].startswith(str(tls_pki.valid.not_after.year))
    assert expired["state"] == "invalid" and expired["verify_error"] == "certificate expired"
    assert expired["reason"].startswith("certificate expired") and expired["days_left"] < 0
    assert expired["sha256"] == nginx_tls.extra["certs"]["expired"].sha256


def test_client_certificate(nginx_tls, tls_pki):
    """--cert/--key reach the handshake: nginx asks for one on this port
    (the handshake completes without one too; nginx then answers 400)."""
    port = nginx_tls.ports["client_auth"]
    args = [
        "--ca",
        str(tls_pki.ca.cert),
        "--cert",
        str(tls_pki.client.cert),
        "--key",
        str(tls_pki.client.key),
    ]
    r = run("tls", f"localhost:{port}", *args)
    assert r.returncode == 0, (r.stdout, r.stderr)
    bad = run("tls", f"localhost:{port}", "--ca", str(tls_pki.ca.cert), "--key", str(tls_pki.client.key))
    one_line_error(bad)
    assert "--key needs --cert" in bad.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["tls", "127.0.0.1:1", "--warn-days", "-1"],
        ["tls", "127.0.0.1:1", "--warn-days", "nan"],
        ["tls", "127.0.0.1:1", "--starttls", "gopher"],
        ["tls", "127.0.0.1:1", "--ca", "/nonexistent/ca.pem"],
        ["tls", "127.0.0.1:1", "-4", "-6"],
        ["tls", "127.0.0.1:0"],
        ["tls"],
    ],
)
def test_usage_errors_exit_2(argv):
    r = run(*argv)
    one_line_error(r)
    assert r.stdout == ""


@needs_ipv6
def test_family_and_sni(nginx_tls, tls_pki):
    """nginx listens on 127.0.0.1 and ::1: -6 reaches the IPv6 one, -4 on
    an IPv6 literal has nothing to try; --sni names the certificate."""
    port = nginx_tls.ports["valid"]
    ca = str(tls_pki.ca.cert)
    r = run("tls", f"[::1]:{port}", "-6", "--ca", ca, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["address"] == "::1"
    r = run("tls", f"[::1]:{port}", "-4", "--ca", ca)
    assert r.returncode == 1 and "no IPv4 address" in r.stderr
    wrong = nginx_tls.ports["wrong_name"]
    assert run("tls", f"127.0.0.1:{wrong}", "--ca", ca, "--sni", "localhost").returncode == 1
    r = run("tls", f"127.0.0.1:{wrong}", "--ca", ca, "--sni", "wrong.socketkit.invalid")
    assert r.returncode == 0, r.stderr


def test_a_python_tls_server(tcp_peer, tls_pki):
    peer: TcpPeer = tcp_peer(tls_handler(tls_pki))
    r = run("tls", f"127.0.0.1:{peer.address[1]}", "--ca", str(tls_pki.ca.cert), "--source", "127.0.0.1")
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_nagios_grades_days_left_and_verification(nginx_tls, tls_pki):
    """`tls --nagios` (issue 13): one status line with perfdata, 0 OK /
    1 WARNING (within --warn-days) / 2 CRITICAL (within --crit-days, expired,
    not verified) / 3 UNKNOWN (bad arguments)."""
    ca = ("--ca", str(tls_pki.ca.cert))
    valid = target(nginx_tls, "valid")
    r = run("tls", valid, *ca, "--nagios")
    assert r.returncode == 0, r.stdout
    line = r.stdout.strip()
    assert line.startswith("SOCKETKIT OK - ") and "days left" in line
    assert "| days=" in line and "time=" in line
    r = run("tls", valid, *ca, "--nagios", "--warn-days", "30000")
    assert r.returncode == 1 and r.stdout.startswith("SOCKETKIT WARNING - ")
    r = run("tls", valid, *ca, "--nagios", "--warn-days", "30000", "--crit-days", "20000")
    assert r.returncode == 2 and r.stdout.startswith("SOCKETKIT CRITICAL - ")
    r = run("tls", target(nginx_tls, "expired"), *ca, "--nagios")
    assert r.returncode == 2 and r.stdout.startswith("SOCKETKIT CRITICAL - ")
    r = run("tls", target(nginx_tls, "wrong_name"), *ca, "--nagios")
    assert r.returncode == 2 and "hostname mismatch" in r.stdout
    r = run("tls", valid, "--nagios", "--crit-days", "-1")
    assert r.returncode == 3 and r.stdout.startswith("SOCKETKIT UNKNOWN - ")
