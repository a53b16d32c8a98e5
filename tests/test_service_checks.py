"""Service checks (issue 11): send/expect dialogues, ready service steps,
STARTTLS presets, phase timings and address control, against real peers
(redis, memcached, postfix, dovecot, postgresql; tls_fixtures.py) and
Python peers."""

from __future__ import annotations

import json
import socket
import textwrap
import threading

import pytest
from _child import can_make_netns, netns, start
from daemons import SSH_BANNER
from peers import TcpPeer, closed_tcp_port, has_ipv6_loopback
from test_redis import REDIS, redis_port  # noqa: F401  (the module fixture)

import socketkit
from socketkit import SERVICES, Expect, Send, StartTls, TlsConfig


def trusting(pki) -> TlsConfig:
    return TlsConfig(ca_file=pki.ca.cert)


def assert_timings(r: socketkit.CheckResult, *, tls: bool = False, dialogue: bool = True) -> None:
    t = r.timings
    assert t is not None and set(t) == {"resolve_ms", "connect_ms", "tls_ms", "dialogue_ms", "total_ms"}
    assert t["connect_ms"] is not None and t["total_ms"] is not None
    assert t["total_ms"] >= t["connect_ms"] > 0
    assert (t["tls_ms"] is not None) == tls
    assert (t["dialogue_ms"] is not None) == dialogue
    parts = [v for k, v in t.items() if k != "total_ms" and v is not None]
    assert t["total_ms"] >= sum(parts) * 0.999


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_redis_ping_pong(redis_port):  # noqa: F811
    r = socketkit.check(("127.0.0.1", redis_port), service="redis")
    assert r.ok, r
    assert r.failed_step is None and r.received is None
    assert_timings(r)
    steps = [
        Send(b"PING\r\n"),
        Expect(b"+PONG\r\n"),
        Send(b"ECHO hi\r\n"),
        Expect(rb"\$(\d+)\r\n(\w+)", regex=True),
    ]
    r = socketkit.check(f"127.0.0.1:{redis_port}", steps=steps)
    assert r.ok and r.captures == (b"2", b"hi"), r


def test_memcached_version(memcached_server):
    r = socketkit.check(("127.0.0.1", memcached_server.port), service="memcached", timeout=3)
    assert r.ok, r
    assert r.captures is not None and r.captures[0][:1].isdigit()


def test_ssh_banner(ssh_banner_server):
    r = socketkit.check(ssh_banner_server.address, service="ssh", timeout=3)
    assert r.ok, r
    assert r.captures == (b"2.0", b"socketkit_test")
    assert SSH_BANNER.startswith(b"SSH-2.0-socketkit_test")


def test_a_failing_expect_reports_the_step_and_the_bytes(ssh_banner_server):
    steps = [Expect(b"SSH-"), Send(b"hello\r\n"), Expect(b"never", timeout=0.2)]
    r = socketkit.check(ssh_banner_server.address, steps=steps, timeout=3)
    assert r.state == "error" and not r.ok
    assert r.failed_step == 2
    assert r.received == b"2.0-socketkit_test\r\n"
    assert "step 2" in r.error and "timed out" in r.error
    d = r.to_dict()
    assert d["failed_step"] == 2 and d["received"] == "2.0-socketkit_test\r\n"
    assert "failed_step=2" in repr(r)


def test_a_close_fails_the_expect_at_once(tcp_peer):
    peer = tcp_peer(lambda c: c.sendall(b"bye"))
    r = socketkit.check(peer.address, steps=[Expect(b"hello", timeout=10)], timeout=10)
    assert r.failed_step == 0 and r.received == b"bye"
    assert "closed" in r.error
    assert r.timings["total_ms"] < 5000


def test_binary_send_has_nothing_appended(tcp_peer):
    got: list[bytes] = []
    done = threading.Event()

    def handler(conn: socket.socket) -> None:
        buf = b""
        while chunk := conn.recv(100):
            buf += chunk
        got.append(buf)
        done.set()

    peer = tcp_peer(handler)
    data = bytes([0, 1, 2, 0xFF, 13, 10, 0])
    r = socketkit.check(peer.address, steps=[Send(data), Send(b"\x00")], timeout=3)
    assert r.ok, r
    assert done.wait(5)
    assert got == [data + b"\x00"]


def test_echo_peer_regex_and_exact(echo_server):
    steps = [Send(b"\x00id=42;\xff"), Expect(rb"id=(\d+);", regex=True), Expect(b"\xff")]
    r = socketkit.check(echo_server.address, steps=steps, timeout=3)
    assert r.ok and r.captures == (b"42",), r


def test_bad_steps_are_argument_errors(echo_server):
    with pytest.raises(ValueError, match="bad regex"):
        socketkit.check(echo_server.address, steps=[Expect(rb"(?<=a)b", regex=True)])
    with pytest.raises(ValueError, match="unknown service"):
        socketkit.check(echo_server.address, service="gopher")
    with pytest.raises(TypeError, match="steps"):
        socketkit.check(echo_server.address, steps=[b"raw"])
    with pytest.raises(ValueError, match="starttls"):
        socketkit.check(echo_server.address, starttls="xmpp")
    with pytest.raises(ValueError):
        StartTls("xmpp")


def test_services_table():
    assert set(SERVICES) >= {"redis", "memcached", "smtp", "imap", "pop3", "ssh", "http", "postgres"}
    assert SERVICES["redis"] == (Send(b"PING\r\n"), Expect(b"+PONG\r\n"))
    assert b"Host: {host}" in SERVICES["http"][0].data


def test_check_many_and_iter_with_steps(echo_server):
    closed = closed_tcp_port()
    targets = [echo_server.address, ("127.0.0.1", closed), echo_server.address]
    steps = [Send(b"abc"), Expect(b"abc")]
    res = socketkit.check_many(targets, steps=steps, timeout=3, concurrency=2)
    assert [r.state for r in res] == ["open", "closed", "open"]
    assert res[1].timings["dialogue_ms"] is None
    streamed = list(socketkit.check_iter(targets, steps=steps, timeout=3))
    assert sorted(r.state for r in streamed) == ["closed", "open", "open"]
    csv_text = res.to_csv()
    assert "failed_step" in csv_text.splitlines()[0] and len(csv_text.splitlines()) == 4
    assert "<table" in res._repr_html_()


def test_starttls_smtp(smtp_server, tls_pki):
    r = socketkit.check(
        ("localhost", smtp_server.ports["smtp"]), starttls="smtp", tls=trusting(tls_pki), timeout=10
    )
    assert r.ok, r
    assert r.tls is not None and r.tls.verified
    assert r.tls.certificates[0].sha256 == tls_pki.valid.sha256
    assert_timings(r, tls=True, dialogue=False)
    # The same as a StartTls step inside a dialogue, then SMTP over TLS.
    steps = [StartTls("smtp"), Send(b"EHLO socketkit.invalid\r\n"), Expect(rb"(?m)^250 ", regex=True)]
    r = socketkit.check(
        ("localhost", smtp_server.ports["smtp"]), steps=steps, tls=trusting(tls_pki), timeout=10
    )
    assert r.ok, r
    assert r.tls.certificates[0].sha256 == tls_pki.valid.sha256
    assert_timings(r, tls=True)


@pytest.mark.parametrize("proto", ["imap", "pop3"])
def test_starttls_dovecot(dovecot_server, tls_pki, proto):
    r = socketkit.check(
        ("localhost", dovecot_server.ports[proto]), starttls=proto, tls=trusting(tls_pki), timeout=10
    )
    assert r.ok, r
    assert r.tls.verified and r.tls.certificates[0].sha256 == tls_pki.valid.sha256
    r = socketkit.check(("localhost", dovecot_server.ports[proto]), service=proto, timeout=10)
    assert r.ok, r


def test_starttls_postgres(postgres_server, tls_pki):
    target = ("localhost", postgres_server.port)
    r = socketkit.check(target, starttls="postgres", tls=trusting(tls_pki), timeout=10)
    assert r.ok, r
    assert r.tls.certificates[0].sha256 == tls_pki.valid.sha256
    r = socketkit.check(target, service="postgres", timeout=10)
    assert r.ok and r.captures == (b"S",), r


def test_starttls_verification_failure_is_an_error(smtp_server):
    # The system roots do not know the test CA.
    r = socketkit.check(("localhost", smtp_server.ports["smtp"]), starttls="smtp", timeout=10)
    assert r.state == "error" and "certificate" in r.error, r


def test_tls_from_the_first_byte(nginx_tls, tls_pki):
    steps = [
        Send(b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        Expect(b"HTTP/1.1 200"),
    ]
    r = socketkit.check(
        ("localhost", nginx_tls.ports["valid"]), tls=trusting(tls_pki), steps=steps, timeout=10
    )
    assert r.ok, r
    assert r.tls.version in ("TLSv1.2", "TLSv1.3")
    r = socketkit.check(
        ("localhost", nginx_tls.ports["valid"]), tls=trusting(tls_pki), service="http", timeout=10
    )
    assert r.ok and r.captures == (b"200",), r
    # tls= alone: TCP and TLS up.
    r = socketkit.check(("localhost", nginx_tls.ports["valid"]), tls=trusting(tls_pki), timeout=10)
    assert r.ok and r.tls.verified
    assert_timings(r, tls=True, dialogue=False)


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no ::1 on this host")
def test_family_ipv6_against_a_server_on_v6_only():
    peer = TcpPeer(lambda c: c.sendall(b"v6 here"), "::1")
    try:
        port = peer.address[1]
        r = socketkit.check(("::1", port), family="ipv6")
        assert r.ok and r.address == "::1"
        r = socketkit.check(("::1", port), family="ipv4")
        assert r.state == "error" and "IPv4" in r.error
        r = socketkit.check(("::1", port), family="ipv6", steps=[Expect(b"v6")])
        assert r.ok and r.address == "::1"
        assert socketkit.banner(("::1", port), family="ipv6") == b"v6 here"
        with pytest.raises(socketkit.ResolveError):
            socketkit.banner(("127.0.0.1", port), family="ipv6")
        assert socketkit.tcping(("::1", port), count=1, interval=0, family="ipv6").received == 1
    finally:
        peer.stop()


def test_family_is_checked():
    with pytest.raises(ValueError, match="family"):
        socketkit.check("127.0.0.1:1", family="ipx")
    with pytest.raises(ValueError, match="source_address"):
        socketkit.check("127.0.0.1:1", family="ipv6", source_address=("127.0.0.1", 0))
    r = socketkit.check_many(["127.0.0.1:1"], family="ipv6")
    assert r[0].state == "error" and "IPv6" in r[0].error


def test_source_address_is_seen_by_the_server(tcp_peer):
    seen: list[tuple[str, int]] = []
    cond = threading.Condition()

    def handler(conn: socket.socket) -> None:
        with cond:
            seen.append(conn.getpeername()[:2])
            cond.notify_all()
        conn.sendall(b"hi")

    peer = tcp_peer(handler)
    src_port = closed_tcp_port("127.0.0.2")
    r = socketkit.check(peer.address, source_address=("127.0.0.2", src_port))
    assert r.ok, r
    r = socketkit.check(peer.address, source_address="127.0.0.2", steps=[Expect(b"hi")])
    assert r.ok, r
    assert socketkit.banner(peer.address, source_address=("127.0.0.2", 0)) == b"hi"
    res = socketkit.check_many([peer.address] * 3, source_address=("127.0.0.2", 0))
    assert res.all_ok
    with cond:  # the peer's handlers run in their own threads
        assert cond.wait_for(lambda: len(seen) == 6, timeout=5), seen
    assert seen[0] == ("127.0.0.2", src_port)
    assert {h for h, _ in seen} == {"127.0.0.2"}


def test_each_address_gives_one_result_per_address(tcp_peer):
    peer = tcp_peer(lambda c: None)
    port = peer.address[1]
    addrs = {a[4][0] for a in socket.getaddrinfo("localhost", port, proto=socket.IPPROTO_TCP)}
    res = socketkit.check_many([f"localhost:{port}", f"127.0.0.1:{port}"], each_address=True)
    assert len(res) == len(addrs) + 1
    assert {r.address for r in res[: len(addrs)]} == addrs
    assert all(r.host == "localhost" for r in res[: len(addrs)])
    assert res[-1].ok and res[-1].host == "127.0.0.1"
    streamed = list(socketkit.check_iter([f"localhost:{port}"], each_address=True))
    assert {r.address for r in streamed} == addrs
    assert all(r.timings["resolve_ms"] is not None for r in streamed)


def test_wait_for_with_steps(ssh_banner_server, echo_server):
    waited = socketkit.wait_for(ssh_banner_server.address, service="ssh", timeout=5)
    assert waited < 5
    with pytest.raises(socketkit.TimeoutError) as e:
        socketkit.wait_for(
            [echo_server.address], steps=[Send(b"x"), Expect(b"y", timeout=0.05)], timeout=0.5, interval=0.05
        )
    assert e.value.targets == [f"127.0.0.1:{echo_server.address[1]}"]


# The child signals itself from a thread, so the time from the signal to
# KeyboardInterrupt is measured in one clock, without process start-up.
CHILD = """
import os, signal, socketkit, sys, threading, time
sent = []
def fire():
    sent.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)
threading.Timer(0.3, fire).start()
print("READY", flush=True)
try:
    {call}
except KeyboardInterrupt:
    print("INTERRUPTED", round(time.monotonic() - sent[0], 3), flush=True)
    sys.exit(0)
print("RETURNED", flush=True)
"""


@pytest.mark.parametrize(
    "call",
    [
        "socketkit.check({a!r}, steps=[socketkit.Expect(b'never')], timeout=60)",
        "socketkit.check_many([{a!r}] * 3, service='ssh', timeout=60)",
        "socketkit.tls_check({a!r}, timeout=60)",
        "list(socketkit.tls_check_iter([{a!r}] * 2, timeout=60))",
    ],
)
def test_ctrl_c_during_a_dialogue_or_handshake(stalled_server, call):
    code = CHILD.format(call=call.format(a=stalled_server.address))
    proc = start(textwrap.dedent(code))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "INTERRUPTED" in out, (out, err)
    assert float(out.split()[-1]) < 0.2, out


def test_banner_after_steps(echo_server, smtp_server, tls_pki, ssh_banner_server):
    assert socketkit.banner(echo_server.address, steps=[Send(b"hello")], timeout=3) == b"hello"
    # What follows the last match is the start of the banner.
    assert socketkit.banner(echo_server.address, steps=[Send(b"ab:cd"), Expect(b"ab:")], timeout=3) == b"cd"
    said = socketkit.banner(
        ("localhost", smtp_server.ports["smtp"]),
        steps=[StartTls("smtp"), Send(b"EHLO socketkit.invalid\r\n")],
        tls=trusting(tls_pki),
        timeout=10,
    )
    assert said.startswith(b"250-") and b"\r\n250 " in said
    with pytest.raises(socketkit.Error, match="step 0") as e:
        socketkit.banner(ssh_banner_server.address, steps=[Expect(b"HTTP", timeout=0.1)])
    assert "SSH-2.0" in str(e.value)
    with pytest.raises(socketkit.ConnectionRefusedError):
        socketkit.banner(("127.0.0.1", closed_tcp_port()), steps=[Send(b"x")])


EACH_ADDRESS_CHILD = """
import json, socket, socketkit
v4 = socket.create_server(("127.0.0.1", 0))
port = v4.getsockname()[1]
v6 = socket.create_server(("::1", port), family=socket.AF_INET6)
print("READY", flush=True)
res = socketkit.check_many([f"both.test:{port}"], each_address=True)
one = socketkit.check_many([f"both.test:{port}"])
v6only = socketkit.check(f"both.test:{port}", family="ipv6")
print(json.dumps([[r.address for r in res], [r.state for r in res], len(one), v6only.address]), flush=True)
"""


@pytest.mark.skipif(not can_make_netns(), reason="needs root and iproute2 for a network namespace")
def test_each_address_on_a_name_with_both_loopback_addresses():
    hosts = "127.0.0.1 both.test\n::1 both.test\n"
    with netns(hosts=hosts) as prefix:
        try:
            proc = start(textwrap.dedent(EACH_ADDRESS_CHILD), prefix)
        except AssertionError as e:
            if "Cannot assign requested address" in str(e):
                pytest.skip("no ::1 in a fresh network namespace here")
            raise
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    addrs, states, n_plain, v6only = json.loads(out.splitlines()[-1])
    assert sorted(addrs) == ["127.0.0.1", "::1"] and states == ["open", "open"]
    assert n_plain == 1 and v6only == "::1"
