"""TcpClient's service-check pieces (issue 11): family=, start_tls(starttls=)
and run_steps(), against real peers (redis, memcached, postfix; tls_fixtures.py)
and Python peers."""

from __future__ import annotations

import pytest
from peers import TcpPeer, has_ipv6_loopback
from test_redis import REDIS, redis_port  # noqa: F401  (the module fixture)

import socketkit
from socketkit import Expect, Send, StartTls, TlsConfig


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_run_steps_speaks_redis_and_returns_captures(redis_port):  # noqa: F811
    with socketkit.TcpClient(("127.0.0.1", redis_port), timeout=5) as c:
        assert c.run_steps([Send(b"PING\r\n"), Expect(b"+PONG\r\n")]) is None
        caps = c.run_steps([Send(b"ECHO hello\r\n"), Expect(rb"\$(\d+)\r\n(\w+)\r\n", regex=True)])
        assert caps == (b"5", b"hello")
        # The connection goes on in plain recv/send after a dialogue.
        assert c.request(b"PING\r\n", until=b"\r\n") == b"+PONG\r\n"


def test_run_steps_failure_names_the_step_and_what_arrived(tcp_peer):
    srv = tcp_peer(lambda conn: (conn.sendall(b"HELLO v1\r\n"), conn.recv(100)))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        with pytest.raises(socketkit.DialogueError) as ei:
            c.run_steps([Expect(b"HELLO"), Expect(b"never", timeout=0.2)])
    e = ei.value
    assert isinstance(e, socketkit.Error) and isinstance(e, OSError)
    assert e.failed_step == 1
    assert e.received == b" v1\r\n"
    assert "step 1" in str(e)


def test_run_steps_leaves_bytes_after_the_last_match_buffered(echo_server):
    # The docstring's promise: what arrived after the last Expect's match is
    # the next recv's, not lost (the echo sends both lines in one segment).
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        assert c.run_steps([Send(b"first\nsecond\n"), Expect(b"first\n")]) is None
        assert c.recv_line() == b"second\n"
        c.sendall(b"third\n")
        assert c.recv_line() == b"third\n"


def test_run_steps_rejects_bad_steps(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        with pytest.raises(TypeError, match=r"steps\[0\]"):
            c.run_steps(["PING"])
        with pytest.raises(TypeError, match="steps"):
            c.run_steps(5)


def test_memcached_version_through_run_steps(memcached_server):
    with socketkit.TcpClient(("127.0.0.1", memcached_server.port), timeout=5) as c:
        caps = c.run_steps([Send(b"version\r\n"), Expect(rb"VERSION (\S+)\r\n", regex=True)])
    assert caps is not None and caps[0][:1].isdigit()


def test_start_tls_with_the_smtp_preset(smtp_server, tls_pki):
    with socketkit.TcpClient(("localhost", smtp_server.ports["smtp"]), timeout=10) as c:
        c.start_tls(TlsConfig(ca_file=tls_pki.ca.cert), starttls="smtp")
        info = c.tls_info()
        assert info is not None and info.verified
        assert info.certificates[0].sha256 == tls_pki.valid.sha256
        # SMTP goes on over TLS: a new EHLO is answered.
        c.sendall(b"EHLO socketkit.test\r\n")
        assert c.recv_line().startswith(b"250")


def test_run_steps_with_a_starttls_step(smtp_server, tls_pki):
    with socketkit.TcpClient(("localhost", smtp_server.ports["smtp"]), timeout=10) as c:
        c.run_steps(
            [StartTls("smtp"), Send(b"EHLO socketkit.test\r\n"), Expect(b"250 ")],
            tls=TlsConfig(ca_file=tls_pki.ca.cert),
        )
        assert c.tls_info() is not None


def test_start_tls_preset_is_checked(echo_server):
    with (
        socketkit.TcpClient(echo_server.address, timeout=5) as c,
        pytest.raises(ValueError, match="starttls"),
    ):
        c.start_tls(starttls="gopher")


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no ::1 on this host")
def test_family_picks_the_address_family():
    peer = TcpPeer(lambda c: c.sendall(b"v6 here"), "::1")
    try:
        port = peer.address[1]
        with socketkit.TcpClient(("::1", port), timeout=5, family="ipv6") as c:
            assert c.peer_address[0] == "::1"
            assert c.recv_exact(7) == b"v6 here"
        with pytest.raises(socketkit.ResolveError):
            socketkit.TcpClient(("127.0.0.1", port), timeout=5, family="ipv6")
        with pytest.raises(ValueError, match="family"):
            socketkit.TcpClient(("::1", port), timeout=5, family="ipx")
    finally:
        peer.stop()
