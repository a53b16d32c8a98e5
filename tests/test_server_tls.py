"""TcpServer(tls=TlsConfig(...)) in every mode (accept, handler,
on_message, echo) against Python's ``ssl`` client and ``openssl s_client``:
replies, client certificates, clients that never handshake or speak
plaintext (closed, counted, nobody else held up), and stop() with TLS
connections open."""

from __future__ import annotations

import gc
import logging
import os
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from _server_util import closed_by_peer, connect, echo_lines, recv_line, run_clients, wait_until

import socketkit

MODES = ["accept", "handler", "on_message", "echo"]


def server_config(pki, client_auth: bool = False) -> socketkit.TlsConfig:
    return socketkit.TlsConfig(
        cert_file=str(pki.valid.chain),
        key_file=str(pki.valid.key),
        client_ca_file=str(pki.client_ca.cert) if client_auth else None,
    )


def client_context(pki, client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    if client_cert:
        ctx.load_cert_chain(str(pki.client.cert), str(pki.client.key))
    return ctx


def reply(mode: str, line: bytes) -> bytes:
    """What a server in `mode` answers to `line` (on_message upper-cases)."""
    return line.upper() if mode == "on_message" else line


def serve_one(conn: socketkit.TcpClient) -> None:
    """An accept loop's worker: echo lines until the client leaves or the
    loop closes the connection."""
    try:
        echo_lines(conn)
    except (socketkit.Error, OSError):
        pass  # closed under us by the loop's cleanup
    finally:
        conn.close()


@contextmanager
def tls_server(mode: str, tls, **kw) -> Iterator[socketkit.TcpServer]:
    """A started TLS server in `mode` that echoes lines (on_message:
    upper-cased); accept mode runs a hand-written loop in a thread."""
    if mode == "echo":
        srv = socketkit.TcpServer.echo(tls=tls, **kw)
        with srv:
            yield srv
        return
    if mode == "handler":
        with socketkit.TcpServer(handler=echo_lines, tls=tls, **kw) as srv:
            yield srv
        return
    if mode == "on_message":
        with socketkit.TcpServer(on_message=lambda m: m.upper(), tls=tls, **kw) as srv:
            yield srv
        return
    srv = socketkit.TcpServer(tls=tls, **kw)
    workers: list[threading.Thread] = []
    stopping = threading.Event()
    conns: list[socketkit.TcpClient] = []

    def loop() -> None:
        while True:
            try:
                conn, _peer = srv.accept()
            except socketkit.Error:
                if stopping.is_set():
                    return
                continue  # a failed handshake: on to the next client
            assert conn.tls_info() is not None
            conns.append(conn)
            t = threading.Thread(target=serve_one, args=(conn,))
            t.start()
            workers.append(t)

    acceptor = threading.Thread(target=loop)
    acceptor.start()
    try:
        yield srv
    finally:
        stopping.set()
        srv.stop()
        acceptor.join(5)
        for c in conns:  # accept()'s connections are the loop's to close
            c.close()
        for t in workers:
            t.join(5)
        assert not acceptor.is_alive()


def tls_connect(srv, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    return ctx.wrap_socket(connect(srv.address), server_hostname="localhost")


def round_trip(mode: str, s: socket.socket, line: bytes) -> None:
    s.sendall(line)
    assert recv_line(s) == reply(mode, line)


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_serves_python_ssl(mode, tls_pki) -> None:
    with tls_server(mode, server_config(tls_pki)) as srv:
        ctx = client_context(tls_pki)

        def client(i: int) -> None:
            with tls_connect(srv, ctx) as s:
                assert s.version() in ("TLSv1.2", "TLSv1.3")
                for r in range(5):
                    round_trip(mode, s, f"client {i} round {r}\n".encode())
                big = b"x" * 60_000 + b"\n"  # several TLS records, under lines()'s 64 KiB
                round_trip(mode, s, big)

        run_clients(10, client)
        assert srv.stats["tls_failures"] == 0


def s_client(srv, pki, *extra: str) -> subprocess.Popen:
    target = f"127.0.0.1:{srv.address[1]}"
    return subprocess.Popen(
        [
            "openssl",
            "s_client",
            "-connect",
            target,
            "-CAfile",
            str(pki.ca.cert),
            "-verify_return_error",
            "-quiet",
            *extra,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def read_stdout(p: subprocess.Popen, n: int, within: float = 10.0) -> bytes:
    """Up to `n` bytes of `p`'s output, less if it ends or `within` passes."""
    assert p.stdout is not None
    out = b""
    deadline = time.monotonic() + within
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([p.stdout], [], [], left)[0]:
            break
        chunk = os.read(p.stdout.fileno(), n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def finish(p: subprocess.Popen) -> None:
    """End the s_client we started (by its own handle), reap it."""
    if p.poll() is None:
        p.kill()
    p.communicate(timeout=10)


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@needs_openssl
@pytest.mark.parametrize("mode", MODES)
def test_each_mode_serves_openssl_s_client(mode, tls_pki) -> None:
    with tls_server(mode, server_config(tls_pki)) as srv:
        p = s_client(srv, tls_pki)
        try:
            assert p.stdin is not None
            p.stdin.write(b"hello from s_client\n")
            p.stdin.flush()
            want = reply(mode, b"hello from s_client\n")
            assert read_stdout(p, len(want)) == want
        finally:
            finish(p)
        assert srv.stats["tls_failures"] == 0


@needs_openssl
@pytest.mark.parametrize("mode", MODES)
def test_client_certificate_required(mode, tls_pki) -> None:
    with tls_server(mode, server_config(tls_pki, client_auth=True)) as srv:
        with tls_connect(srv, client_context(tls_pki, client_cert=True)) as s:
            round_trip(mode, s, b"with a certificate\n")
        # Without one: TLS 1.3 finishes the client's side of the handshake
        # first; the server's refusal comes with the first read.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with tls_connect(srv, client_context(tls_pki)) as s:
                s.sendall(b"no certificate\n")
                if not s.recv(100):
                    raise ConnectionError("closed")
        assert wait_until(lambda: srv.stats["tls_failures"] == 1), srv.stats
        # s_client with the client certificate is served too.
        p = s_client(srv, tls_pki, "-cert", str(tls_pki.client.cert), "-key", str(tls_pki.client.key))
        try:
            assert p.stdin is not None
            p.stdin.write(b"s_client cert\n")
            p.stdin.flush()
            want = reply(mode, b"s_client cert\n")
            assert read_stdout(p, len(want)) == want
        finally:
            finish(p)


def test_handler_sees_the_client_certificate(tls_pki) -> None:
    seen: list[object] = []

    def handler(conn: socketkit.TcpClient) -> None:
        seen.append(conn.tls_info())
        conn.sendall(conn.recv_line())

    with socketkit.TcpServer(handler=handler, tls=server_config(tls_pki, client_auth=True)) as srv:
        with tls_connect(srv, client_context(tls_pki, client_cert=True)) as s:
            s.sendall(b"who am I\n")
            assert recv_line(s) == b"who am I\n"
    (info,) = seen
    assert info is not None and info.verified
    assert info.certificates[0].subject == tls_pki.client.subject


@pytest.mark.parametrize("mode", MODES)
def test_a_client_that_never_handshakes_blocks_nobody(mode, tls_pki) -> None:
    # No idle_timeout: the silent clients would wait the whole handshake
    # timeout; the others are served meanwhile.
    with tls_server(mode, server_config(tls_pki)) as srv:
        silent = [connect(srv.address) for _ in range(3)]
        try:
            ctx = client_context(tls_pki)
            t0 = time.monotonic()

            def client(i: int) -> None:
                with tls_connect(srv, ctx) as s:
                    round_trip(mode, s, f"past the silent ones {i}\n".encode())

            run_clients(5, client)
            assert time.monotonic() - t0 < 5
        finally:
            for s in silent:
                s.close()


@pytest.mark.parametrize("mode", MODES)
def test_silent_client_closed_after_idle_timeout_and_counted(mode, tls_pki) -> None:
    with tls_server(mode, server_config(tls_pki), idle_timeout=0.3) as srv:
        with connect(srv.address) as silent:
            assert closed_by_peer(silent, within=5)
        assert wait_until(lambda: srv.stats["tls_failures"] == 1), srv.stats


@pytest.mark.parametrize("mode", MODES)
def test_plaintext_client_is_closed_counted_and_logged_at_debug(mode, tls_pki, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="socketkit")
    with tls_server(mode, server_config(tls_pki)) as srv:
        connect(srv.address).close()  # a port check: not a TLS failure
        with connect(srv.address) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert closed_by_peer(s)
        assert wait_until(lambda: srv.stats["tls_failures"] == 1), srv.stats
        assert srv.stats["handler_errors"] == 0
        with tls_connect(srv, client_context(tls_pki)) as s:
            round_trip(mode, s, b"still serving\n")
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG]
    if mode != "accept":  # accept() raises it to its caller instead
        assert any("TLS handshake" in r.getMessage() for r in caplog.records)


def test_accept_returns_a_tls_client_and_raises_a_failed_handshake(tls_pki) -> None:
    srv = socketkit.TcpServer(tls=server_config(tls_pki))
    try:
        ctx = client_context(tls_pki)
        with connect(srv.address) as plain:
            plain.sendall(b"not TLS\r\n")
            with pytest.raises(socketkit.Error):
                srv.accept(timeout=5)
        got: list[bytes] = []

        def client() -> None:
            with tls_connect(srv, ctx) as s:
                s.sendall(b"over tls\n")
                got.append(recv_line(s))

        t = threading.Thread(target=client)
        t.start()
        conn, peer = srv.accept(timeout=5)
        with conn:
            info = conn.tls_info()
            assert info is not None and info.version.startswith("TLSv1.")
            assert peer[0] == "127.0.0.1"
            conn.sendall(conn.recv_line())
        t.join(5)
        assert got == [b"over tls\n"]
        assert srv.stats["tls_failures"] == 1
    finally:
        srv.stop()


def test_accept_times_out_past_a_silent_client(tls_pki) -> None:
    srv = socketkit.TcpServer(tls=server_config(tls_pki))
    try:
        with connect(srv.address):
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                srv.accept(timeout=0.3)
            assert time.monotonic() - t0 < 3
    finally:
        srv.stop()


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@pytest.mark.parametrize("mode", MODES)
def test_stop_with_tls_connections_open_leaves_no_fd(mode, tls_pki, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="socketkit")
    ctx = client_context(tls_pki)
    tls = server_config(tls_pki)
    with tls_server(mode, tls) as warm, tls_connect(warm, ctx) as s:
        round_trip(mode, s, b"warm up\n")  # threads, runtimes, lazy state
    del warm
    gc.collect()
    fds = fd_count()
    srv_cm = tls_server(mode, tls)
    srv = srv_cm.__enter__()
    clients = [tls_connect(srv, ctx) for _ in range(5)]
    for c in clients:
        round_trip(mode, c, b"open\n")
    silent = connect(srv.address)  # mid-handshake when stop() comes
    t0 = time.monotonic()
    srv_cm.__exit__(None, None, None)
    assert time.monotonic() - t0 < 5
    for c in clients:
        assert closed_by_peer(c)
        c.close()
    assert closed_by_peer(silent)
    silent.close()
    assert srv.fileno() == -1
    assert srv.stats["tls_failures"] == 0, caplog.text
    del srv, srv_cm  # the server object's own stop-signal pipe goes with it
    gc.collect()
    assert wait_until(lambda: fd_count() == fds), (fd_count(), fds)


def test_tls_server_needs_a_certificate(tls_pki) -> None:
    with pytest.raises(ValueError, match="cert_file"):
        socketkit.TcpServer(tls=socketkit.TlsConfig())
    with pytest.raises(ValueError, match="cert_file"):
        socketkit.TcpServer.echo(tls=True)
    with pytest.raises(ValueError, match="key_file"):
        socketkit.TcpServer(
            tls=socketkit.TlsConfig(cert_file=str(tls_pki.valid.cert), key_file=str(tls_pki.valid_ec.key))
        )


def test_stats_and_repr_name_tls(tls_pki) -> None:
    with socketkit.TcpServer.echo(tls=server_config(tls_pki)) as srv:
        assert set(srv.stats) == {
            "accepted",
            "active",
            "rejected",
            "handler_errors",
            "bytes_in",
            "bytes_out",
            "tls_failures",
        }
        assert "tls" in repr(srv)
    with socketkit.TcpServer.echo(tls=None) as srv:
        assert "tls_failures" not in srv.stats
