"""TcpClient's behaviour under TLS (DESIGN.md section 5 kept with TLS):
STARTTLS by hand against postfix, framing, sendfile and shutdown over TLS,
full duplex, close from another thread, handshake timeouts, Ctrl-C during a
stalled handshake, and no fd leaks."""

from __future__ import annotations

import gc
import os
import platform
import signal
import socket
import tempfile
import textwrap
import threading
import time

import pytest
from _child import start
from peers import _POLL_SYSCALLS, blocked_in_poll, can_see_blocked_threads

import socketkit
from socketkit import TcpClient, TlsConfig


def trusting(pki, **kw) -> TlsConfig:
    return TlsConfig(ca_file=pki.ca.cert, **kw)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def smtp_reply(c: TcpClient) -> list[bytes]:
    """One SMTP reply: lines up to the one whose code is followed by a space."""
    lines = []
    while True:
        line = c.recv_line()
        assert line, lines
        lines.append(line)
        if line[3:4] == b" ":
            return lines


# ---------------------------------------------------------------- STARTTLS


def test_start_tls_with_postfix_by_hand(smtp_server, tls_pki):
    with TcpClient(("localhost", smtp_server.ports["smtp"]), timeout=10) as c:
        assert smtp_reply(c)[0].startswith(b"220 ")
        c.sendall(b"EHLO client.test\r\n")
        assert b"250-STARTTLS\r\n" in smtp_reply(c)
        assert c.request(b"STARTTLS\r\n", until=b"\r\n").startswith(b"220 ")
        assert c.tls_info() is None
        c.start_tls(TlsConfig(ca_file=tls_pki.ca.cert))
        info = c.tls_info()
        assert info.verified, info
        leaf = info.certificates[0]
        assert (leaf.sha256, leaf.serial, leaf.subject) == (
            tls_pki.valid.sha256,
            tls_pki.valid.serial,
            tls_pki.valid.subject,
        )
        assert "tls=TLSv1" in repr(c)
        c.sendall(b"EHLO client.test\r\n")
        reply = smtp_reply(c)
        assert reply[0].startswith(b"250-") and b"250-STARTTLS\r\n" not in reply
        with pytest.raises(ValueError, match="already speaks TLS"):
            c.start_tls()
        with pytest.raises(ValueError, match="refused on a TLS connection"):
            c.detach()
        assert c.request(b"QUIT\r\n", until=b"\r\n").startswith(b"221 ")


def test_start_tls_refuses_plain_and_verifies(smtp_server, tls_pki):
    with TcpClient(("localhost", smtp_server.ports["smtp"]), timeout=10) as c:
        smtp_reply(c)
        with pytest.raises(ValueError, match="start_tls"):
            c.start_tls(False)
        with pytest.raises(TypeError, match="tls must be"):
            c.start_tls("yes")
        c.sendall(b"EHLO client.test\r\n")
        smtp_reply(c)
        c.request(b"STARTTLS\r\n", until=b"\r\n")
        # tls=True (the default): the test CA is not a system root.
        with pytest.raises(socketkit.CertificateError) as ei:
            c.start_tls()
        assert ei.value.verify_error == "unknown issuer"


# ---------------------------------------------------------------- framing, sendfile, shutdown


def test_lines_recv_until_and_request_over_tls(nginx_tls, tls_pki):
    addr = ("localhost", nginx_tls.ports["valid"])
    with TcpClient(addr, tls=trusting(tls_pki), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = c.recv_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        assert c.recv_exact(length) == b"valid\n"
        status = c.request(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n", until=b"\r\n")
        assert status == b"HTTP/1.1 200 OK\r\n"
        rest = list(c.lines())
        assert rest[-1] == b"valid\n" and rest[-2] == b"\r\n"


def test_sendfile_and_shutdown_write_over_tls(redis_tls, tls_pki):
    commands = resp(b"SET", b"socketkit:sendfile", b"x" * 200_000) + resp(b"PING") * 100
    with tempfile.TemporaryFile() as f:
        f.write(b"junk" + commands)
        f.flush()
        with TcpClient(("localhost", redis_tls.port), tls=trusting(tls_pki), timeout=10) as c:
            assert c.sendfile(f, offset=4) == len(commands)
            assert f.tell() == 4 + len(commands)
            assert c.recv_line() == b"+OK\r\n"
            for _ in range(100):
                assert c.recv_line() == b"+PONG\r\n"
            # close_notify, then FIN: redis closes its side, a clean EOF.
            c.shutdown("write")
            assert c.recv() == b""


def test_full_duplex_over_tls(redis_tls, tls_pki):
    n = 5000
    with TcpClient(("localhost", redis_tls.port), tls=trusting(tls_pki), timeout=20) as c:
        got: list[bytes] = []

        def reader() -> None:
            for _ in range(n):
                got.append(c.recv_line())

        th = threading.Thread(target=reader)
        th.start()
        for _ in range(n // 100):
            c.sendall(resp(b"PING") * 100)
        th.join(30)
        assert not th.is_alive()
    assert got == [b"+PONG\r\n"] * n


# ---------------------------------------------------------------- waking, timeouts, Ctrl-C, leaks


def test_close_from_another_thread_wakes_a_tls_recv(redis_tls, tls_pki):
    c = TcpClient(("localhost", redis_tls.port), tls=trusting(tls_pki), timeout=30)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            c.recv()
        except OSError as e:
            errors.append(e)

    th = threading.Thread(target=reader)
    th.start()
    if can_see_blocked_threads():
        assert blocked_in_poll(th)
    else:
        time.sleep(0.2)  # let the reader block; not a sync point
    t0 = time.monotonic()
    c.close()
    th.join(5)
    assert not th.is_alive()
    assert time.monotonic() - t0 < 2
    assert len(errors) == 1 and isinstance(errors[0], socketkit.Error), errors
    assert c.closed


def test_handshake_timeout(stalled_server):
    t0 = time.monotonic()
    with pytest.raises(socketkit.TimeoutError) as ei:
        TcpClient(stalled_server.address, tls=True, timeout=0.3)
    assert time.monotonic() - t0 >= 0.29
    assert ei.value.phase == "tls"
    # The deadline is the connect's: a plain connect to it succeeds at once,
    # then start_tls waits the client's timeout.
    with TcpClient(stalled_server.address, timeout=0.2) as c:
        with pytest.raises(socketkit.TimeoutError):
            c.start_tls()


CTRL_C_CHILD = """
import gc, os, sys, time, socketkit
def fds():
    return len(os.listdir("/proc/self/fd"))
before = fds()
print("READY", flush=True)
try:
    socketkit.TcpClient({address!r}, tls=True)
except KeyboardInterrupt:
    caught = time.monotonic()
    gc.collect()
    print("INTERRUPTED", caught, before, fds(), flush=True)
    sys.exit(0)
print("RETURNED", flush=True)
"""


def child_in_poll(pid: int, within: float = 10.0) -> bool:
    """Wait until the child's main thread sits in poll(2) (its handshake wait)."""
    calls = _POLL_SYSCALLS.get(platform.machine(), set())
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/syscall") as f:
                if f.read().split()[0] in calls:
                    return True
        except (OSError, IndexError):
            pass
        time.sleep(0.01)
    return False


def test_ctrl_c_during_a_stalled_handshake(stalled_server):
    proc = start(textwrap.dedent(CTRL_C_CHILD.format(address=stalled_server.address)))
    if can_see_blocked_threads():
        # Accepted by the stalled server and waiting for its answer.
        assert child_in_poll(proc.pid)
        while stalled_server.accepted == 0:
            time.sleep(0.01)
    else:
        time.sleep(0.3)  # into the handshake's wait; not a sync point
    # CLOCK_MONOTONIC is system-wide: the child's reading compares with ours.
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert "INTERRUPTED" in out, (out, err)
    _, caught, before, after = out.split()
    assert float(caught) - sent < 0.2, (float(caught) - sent, out)
    assert int(after) == int(before), out
    assert "Traceback" not in err, err


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_no_fd_leak_over_tls_cycles(nginx_tls, tls_pki):
    cfg = trusting(tls_pki)
    addr = ("127.0.0.1", nginx_tls.ports["valid"])
    # A stalled handshake without an fd in this process: the kernel
    # completes the TCP handshake into the backlog of a listener that never
    # accepts (the stalled_server fixture's accepted sockets would close
    # on its threads' time, and move the count).
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:
        with TcpClient(addr, tls=cfg, timeout=5):
            pass  # warm up (roots read, lazily made state)
        gc.collect()
        before = fd_count()
        for i in range(200):
            with TcpClient(addr, tls=cfg, timeout=5) as c:
                if i % 50 == 0:
                    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    assert b"".join(c.lines()).endswith(b"valid\n")
        # Failures leak nothing either: verification, handshake timeout.
        for _ in range(5):
            with pytest.raises(socketkit.CertificateError):
                TcpClient(("127.0.0.1", nginx_tls.ports["expired"]), tls=cfg, timeout=5)
            with pytest.raises(socketkit.TimeoutError):
                TcpClient(silent.getsockname(), tls=cfg, timeout=0.05)
        gc.collect()
        assert fd_count() == before
