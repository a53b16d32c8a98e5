"""A stopped server holds no fd (issue 15 item 4): every server kind,
started or only bound, is back at the fd count it started from as soon as
stop() returns, with the object still referenced and no garbage collection."""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

import socketkit

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")

LOCAL = ("127.0.0.1", 0)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextmanager
def gc_off() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _handler(conn: socketkit.TcpClient) -> None:
    conn.sendall(conn.recv())


KINDS: dict[str, Callable[[], socketkit.TcpServer | socketkit.UdpServer]] = {
    "tcp-accept": lambda: socketkit.TcpServer(LOCAL),
    "tcp-handler": lambda: socketkit.TcpServer(LOCAL, _handler),
    "tcp-on_message": lambda: socketkit.TcpServer(LOCAL, on_message=lambda m: m),
    "tcp-echo": lambda: socketkit.TcpServer.echo(LOCAL),
    "udp": lambda: socketkit.UdpServer(LOCAL, lambda d, p: d),
    "udp-echo": lambda: socketkit.UdpServer.echo(LOCAL),
}


@pytest.mark.parametrize("started", [False, True], ids=["bound", "started"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stop_releases_every_fd_at_once(kind: str, started: bool) -> None:
    with gc_off():
        before = fd_count()
        s = KINDS[kind]()
        if started:
            s.start()
            host, port = s.address
            if kind.startswith("udp"):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.settimeout(5)
                    u.sendto(b"ping\n", (host, port))
                    assert u.recv(100) == b"ping\n"
            elif kind != "tcp-accept":
                with socket.create_connection((host, port), timeout=5) as c:
                    c.sendall(b"ping\n")
                    assert c.recv(100) == b"ping\n"
        s.stop()
        assert fd_count() == before, f"{kind}: fds left open after stop()"
        assert s.fileno() == -1
        del s
