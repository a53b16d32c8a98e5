"""`check --tls/--starttls/--send/--expect/--service`, `-4`/`-6`/`--source`
on the probe subcommands, and `wait --send --expect` reporting a reply that
did not match (issue 11's CLI, issue 17 item 9), through a subprocess,
against redis, nginx, postfix and Python peers."""

from __future__ import annotations

import json
import socket

import pytest
from peers import has_ipv6_loopback, needs_ipv6
from test_cli import listening, one_line_error, run
from test_cli_tls import tls_handler
from test_redis import REDIS, redis_port  # noqa: F401  (the module fixture)

import socketkit

needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


# --- check --tls / --starttls ----------------------------------------------------


def test_check_tls(nginx_tls, tls_pki):
    ca = str(tls_pki.ca.cert)
    valid, expired = (f"localhost:{nginx_tls.ports[k]}" for k in ("valid", "expired"))
    r = run("check", valid, "--tls", "--ca", ca)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "open" in r.stdout
    r = run("check", valid, expired, "--tls", "--ca", ca, "--json")
    assert r.returncode == 1
    ok, bad = json.loads(r.stdout)
    assert ok["state"] == "open" and ok["tls_verified"] is True and ok["tls_ms"] > 0
    assert bad["state"] == "error" and "certificate expired" in bad["error"]
    # Without the CA the chain does not verify; --insecure takes it anyway.
    assert run("check", valid, "--tls").returncode == 1
    r = run("check", expired, "--tls", "--insecure")
    assert r.returncode == 0, r.stdout
    # A plain TCP check of a TLS port is open: --tls is what asks for more.
    assert run("check", expired).returncode == 0


def test_check_starttls_smtp(smtp_server, tls_pki):
    where = f"localhost:{smtp_server.ports['smtp']}"
    r = run("check", where, "--starttls", "smtp", "--ca", str(tls_pki.ca.cert), "--timeout", "10", "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    (doc,) = json.loads(r.stdout)
    assert doc["tls_verified"] is True and doc["tls_version"].startswith("TLSv1.")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ca", "x.pem"], "--ca needs --tls or --starttls"),
        (["--insecure"], "--insecure needs --tls or --starttls"),
        (["--tls", "--udp"], "--udp takes no"),
        (["--send", "x", "--service", "redis"], "--service and --send/--expect"),
        (["--regex"], "--regex needs --expect"),
        (["--expect", "+PONG", "--regex"], 'bad regex "+PONG"'),
        (["--service", "gopher"], "invalid choice"),
        (["-4", "-6"], "not allowed with"),
        (["--source", "example.org"], "source_address"),
    ],
)
def test_check_usage_errors(argv, message):
    r = run("check", "127.0.0.1:1", *argv)
    one_line_error(r)
    assert message in r.stderr, r.stderr


# --- check --send/--expect, --service -------------------------------------------


@needs_redis
def test_check_service_redis_and_send_expect(redis_port):  # noqa: F811
    where = f"127.0.0.1:{redis_port}"
    r = run("check", where, "--service", "redis")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "open" in r.stdout and r.stderr == ""
    r = run("check", where, "--send", "PING\\r\\n", "--expect", "+PONG", "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    (doc,) = json.loads(r.stdout)
    assert doc["state"] == "open" and doc["failed_step"] is None and doc["dialogue_ms"] > 0
    # Several steps, in the order given; a regex's groups come back.
    r = run(
        "check",
        where,
        "--send",
        "PING\\r\\n",
        "--expect",
        r"^\+PONG\r\n",  # --regex: every --expect is a regex
        "--send",
        "ECHO hi\\r\\n",
        "--expect",
        r"\$(\d+)\r\n(\w+)",
        "--regex",
        "--json",
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert json.loads(r.stdout)[0]["captures"] == ["2", "hi"]


@needs_redis
def test_a_failing_expect_names_the_step_and_the_bytes(redis_port):  # noqa: F811
    where = f"127.0.0.1:{redis_port}"
    r = run("check", where, "--send", "PING\\r\\n", "--expect", "+PANG", "--timeout", "0.5")
    assert r.returncode == 1
    assert "error" in r.stdout and "step 1" in r.stdout
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"socketkit check: {where}: step 1 (expect b'+PANG') failed: timed out"), line
    assert line.endswith("received b'+PONG\\r\\n'"), line
    r = run("check", where, "--send", "PING\\r\\n", "--expect", "+PANG", "--timeout", "0.5", "--json")
    (doc,) = json.loads(r.stdout)
    assert doc["failed_step"] == 1 and doc["received"] == "+PONG\r\n"


def test_nothing_is_appended_to_send(tcp_peer):
    got: list[bytes] = []

    def handler(conn: socket.socket) -> None:
        data = conn.recv(64)
        got.append(data)
        conn.sendall(b"ok:" + data)

    peer = tcp_peer(handler)
    r = run("check", f"127.0.0.1:{peer.address[1]}", "--send", "\\x00\\x01ab", "--expect", "ok:\\x00")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert got == [b"\x00\x01ab"]


# --- wait --send/--expect: a reply that did not match (issue 17 item 9) --------------


@needs_redis
def test_wait_expect_mismatch_shows_the_reply(redis_port):  # noqa: F811
    where = f"127.0.0.1:{redis_port}"
    r = run("wait", where, "--send", "PING\\r\\n", "--expect", "+PANG", "--timeout", "1")
    assert r.returncode == 124
    assert "reply did not match b'+PANG': received b'+PONG\\r\\n'" in r.stderr, r.stderr
    r = run("wait", where, "--send", "PING\\r\\n", "--expect", "+PONG", "--timeout", "5", "-4")
    assert r.returncode == 0, r.stderr


def test_wait_for_reports_the_reply_that_did_not_match(tcp_peer):
    def err(conn: socket.socket) -> None:
        conn.recv(64)
        conn.sendall(b"-ERR unknown command\r\n")
        conn.recv(64)

    peer = tcp_peer(err)
    with pytest.raises(socketkit.TimeoutError) as e:
        socketkit.wait_for(peer.address, send=b"PING\r\n", expect=b"+PONG", timeout=0.5, interval=0.05)
    assert "reply did not match b'+PONG': received b'-ERR unknown command\\r\\n'" in str(e.value)
    assert e.value.targets == [f"127.0.0.1:{peer.address[1]}"]
    # send/expect and address control together, now one dialogue path.
    assert socketkit.wait_for(peer.address, send=b"x", expect=b"-ERR", family="ipv4", timeout=5) < 5
    # Only the last bytes of a long reply.
    flood = tcp_peer(lambda c: (c.sendall(b"A" * 5000 + b"END"), c.recv(1)))
    with pytest.raises(socketkit.TimeoutError) as e:
        socketkit.wait_for(flood.address, expect=b"+PONG", timeout=0.3)
    assert "(the last 200 of 5003 bytes)" in str(e.value) and "AEND'" in str(e.value)
    with pytest.raises(TypeError, match="encode it first"):
        socketkit.wait_for(peer.address, expect="+PONG", timeout=0.3)  # type: ignore[arg-type]


# --- -4 / -6 / --source -----------------------------------------------------------


@needs_ipv6
def test_family_flags_against_an_ipv6_only_listener(tcp_peer):
    peer = tcp_peer(lambda c: c.recv(1), host="::1")
    port = peer.address[1]
    where = f"[::1]:{port}"
    r = run("check", where, "-6", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["address"] == "::1"
    r = run("check", where, "-4")
    assert r.returncode == 1 and "no IPv4 address" in r.stdout
    r = run("scan", "::1", "-p", str(port), "-6", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["open"] == {"::1": [port]}
    r = run("ping", where, "-6", "-c", "1")
    assert r.returncode == 0 and "connected to ::1" in r.stdout
    assert run("wait", where, "-6", "--timeout", "5", "-q").returncode == 0
    assert run("wait", where, "-4", "--timeout", "0.2", "-q").returncode == 124


def test_source_address_is_the_one_the_server_sees(tcp_peer):
    peers: list[str] = []

    def handler(conn: socket.socket) -> None:
        peers.append(conn.getpeername()[0])

    peer = tcp_peer(handler)
    where = f"127.0.0.1:{peer.address[1]}"
    for argv in (["check", where], ["ping", where, "-c", "1"], ["wait", where, "-q"]):
        r = run(*argv, "--source", "127.0.0.2")
        assert r.returncode == 0, (argv, r.stdout, r.stderr)
    r = run("scan", "127.0.0.1", "-p", str(peer.address[1]), "--source", "127.0.0.2:0")
    assert r.returncode == 0, r.stderr
    assert peers and set(peers) == {"127.0.0.2"}, peers
    if has_ipv6_loopback():
        r = run("check", where, "--source", "::1")
        assert r.returncode == 1 and "no IPv6 address" in r.stdout, r.stdout


def test_check_udp_takes_the_family(udp_echo):
    where = f"127.0.0.1:{udp_echo.address[1]}"
    assert run("check", where, "--udp", "-4").returncode == 0
    r = run("check", where, "--udp", "-6")
    assert r.returncode == 1 and "no IPv6 address" in r.stderr


def test_a_tls_check_from_a_python_tls_server(tcp_peer, tls_pki):
    peer = tcp_peer(tls_handler(tls_pki))
    with listening() as plain:
        r = run(
            "check",
            f"127.0.0.1:{peer.address[1]}",
            f"127.0.0.1:{plain}",
            "--tls",
            "--ca",
            str(tls_pki.ca.cert),
            "--timeout",
            "2",
        )
    assert r.returncode == 1
    rows = r.stdout.splitlines()[1:]
    assert rows[0].split()[3] == "open" and rows[1].split()[3] == "error", rows
