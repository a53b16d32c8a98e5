"""Helpers for the fault tests: every TCP server mode (plain and TLS) behind
one interface, process fd/thread counts, and TLS clients that can reset or
half-close a connection."""

from __future__ import annotations

import os
import socket
import ssl
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from _server_util import frame, wait_until

import socketkit

LOCAL = ("127.0.0.1", 0)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def thread_count() -> int:
    """Every thread of the process, Rust's included (threading sees only Python's)."""
    return len(os.listdir("/proc/self/task"))


@contextmanager
def back_to_baseline(what: str) -> Iterator[None]:
    """The fd count right after the block (which stops its servers) and the
    thread count (threads may take a moment to exit) equal those before it."""
    fds, threads = fd_count(), thread_count()
    yield
    assert fd_count() == fds, f"{what}: {fd_count() - fds} fds left after stop()"
    assert wait_until(lambda: thread_count() == threads, within=5.0), (
        f"{what}: {thread_count() - threads} threads left after stop()"
    )


def handler_lines(conn: socketkit.TcpClient) -> None:
    for line in conn.lines():
        conn.sendall(line)


@dataclass
class Kind:
    """A server mode: how to make it, one request's bytes (the reply is the
    same bytes in every mode), and a request cut in the middle."""

    name: str
    make: Callable[..., socketkit.TcpServer]
    tls: bool

    def request(self, i: int) -> bytes:
        body = b"message %d " % i + b"x" * (i % 50)
        return frame(body) if "length" in self.name else body + b"\n"

    def partial(self) -> bytes:
        return frame(b"y" * 100)[:40] if "length" in self.name else b"no newline yet"


def _kinds() -> list[Kind]:
    def tcp(**kw: object) -> Callable[..., socketkit.TcpServer]:
        return lambda tls=None, **extra: socketkit.TcpServer(LOCAL, tls=tls, **kw, **extra)

    plain = [
        Kind("handler", tcp(handler=handler_lines), False),
        Kind("on_message-line", tcp(on_message=lambda m: m, framing="line"), False),
        Kind("on_message-length", tcp(on_message=lambda m: m, framing="length"), False),
        Kind("echo", lambda tls=None, **extra: socketkit.TcpServer.echo(LOCAL, tls=tls, **extra), False),
    ]
    return plain + [Kind("tls-" + k.name, k.make, True) for k in plain]


KINDS = _kinds()
KIND_IDS = [k.name for k in KINDS]


def server_tls(pki) -> socketkit.TlsConfig:
    return socketkit.TlsConfig(cert_file=str(pki.valid.chain), key_file=str(pki.valid.key))


def client_ctx(pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca.cert))


def open_client(kind: Kind, address: tuple[str, int], pki, timeout: float = 10.0) -> socket.socket:
    raw = socket.create_connection(address, timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not kind.tls:
        return raw
    return client_ctx(pki).wrap_socket(raw, server_hostname="localhost")


def read_to_eof(s: socket.socket, limit: int = 1 << 22) -> bytes:
    buf = bytearray()
    while len(buf) < limit:
        try:
            chunk = s.recv(65536)
        except ssl.SSLEOFError:
            break
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def reset(s: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), no FIN and no TLS close_notify."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def tls_half_close(
    address: tuple[str, int], ctx: ssl.SSLContext, data: bytes, timeout: float = 10.0
) -> bytes:
    """TLS client that sends `data`, then close_notify and a TCP FIN (a TLS
    half-close), and returns the application data the server sends until it
    closes. Built on MemoryBIO: SSLSocket cannot send close_notify and keep
    reading."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with socket.create_connection(address, timeout=timeout) as s:

        def flush() -> None:
            out = outgoing.read()
            if out:
                s.sendall(out)

        def pump() -> bool:
            chunk = s.recv(65536)
            if chunk:
                incoming.write(chunk)
            else:
                incoming.write_eof()
            return bool(chunk)

        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                if not pump():
                    raise ConnectionError("closed during the handshake") from None
        flush()
        obj.write(data)
        flush()
        try:
            obj.unwrap()  # queues close_notify; wants the peer's
        except ssl.SSLWantReadError:
            pass
        flush()
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            try:
                got += obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            except ssl.SSLError as e:
                # After our close_notify, OpenSSL reports application data
                # as an error; what was read so far is what counts.
                if "APPLICATION_DATA_AFTER_CLOSE_NOTIFY" in str(e) or "shutdown" in str(e).lower():
                    break
                raise
            if not pump():
                try:
                    got += obj.read(65536)
                except ssl.SSLError:
                    pass
                break
        return bytes(got)
