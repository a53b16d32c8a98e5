"""No fd or thread leaks (DESIGN.md section 5): thousands of connect/close
cycles, failed connects and dropped objects leave the process's fd count and
thread count where they were."""

from __future__ import annotations

import gc
import os
import selectors
import socket
import threading
import time

import pytest
from peers import closed_tcp_port

import socketkit

CYCLES = 10_000


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")


class AcceptAndClose:
    """A stdlib listener whose thread accepts and closes every connection."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4096)
        self.listener.setblocking(False)
        self.address = self.listener.getsockname()
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not sel.select(0.05):
                    continue
                for _ in range(256):  # drain what is queued
                    try:
                        conn, _ = self.listener.accept()
                    except BlockingIOError:
                        break
                    conn.close()
                    self.accepted += 1

    def wait_accepted(self, n: int, within: float = 30.0) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.accepted >= n:
                return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.listener.close()
        assert not self._thread.is_alive()


@pytest.fixture
def accept_and_close():
    srv = AcceptAndClose()
    yield srv
    srv.stop()


def test_ten_thousand_connect_close_cycles(accept_and_close):
    srv = accept_and_close
    # Warm up once (lazy imports, caches), then take the baseline.
    socketkit.TcpClient(srv.address, timeout=5).close()
    assert srv.wait_accepted(1)
    gc.collect()
    fds, threads = fd_count(), threading.active_count()

    for i in range(CYCLES):
        if i % 2:
            with socketkit.TcpClient(srv.address, timeout=5):
                pass
        else:
            socketkit.TcpClient(srv.address, timeout=5).close()
    assert srv.wait_accepted(CYCLES + 1), f"server accepted only {srv.accepted}"
    gc.collect()
    assert fd_count() == fds
    assert threading.active_count() == threads


# Dropping an open TcpClient is a ResourceWarning, as for the stdlib's
# socket (issue 17); this test drops them on purpose.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_dropped_objects_close_their_sockets(accept_and_close):
    srv = accept_and_close
    gc.collect()
    fds = fd_count()
    for _ in range(500):
        c = socketkit.TcpClient(srv.address, timeout=5)
        c.sendall(b"x")
        del c  # never closed: dropping it must close the fd
    for _ in range(500):
        u = socketkit.UdpSocket(("127.0.0.1", 0))
        u.sendto(b"x", srv.address)
        del u
    gc.collect()
    assert fd_count() == fds


def test_failed_connects_and_resolves_leak_nothing():
    port = closed_tcp_port()
    gc.collect()
    fds, threads = fd_count(), threading.active_count()
    for _ in range(1000):
        with pytest.raises(ConnectionRefusedError):
            socketkit.TcpClient(("127.0.0.1", port), timeout=5)
    for _ in range(5):
        # No timeout: the resolver here occasionally drops a query (glibc then
        # retries after 5 s, the stdlib sees the same); the result must come.
        with pytest.raises(socketkit.ResolveError):
            socketkit.TcpClient(("no-such-host.invalid", 80))
    for _ in range(100):
        with pytest.raises(ValueError):
            socketkit.TcpClient(("127.0.0.1", 70000), timeout=5)
    gc.collect()
    assert fd_count() == fds
    # Resolution runs on helper threads that end by themselves; give them time.
    deadline = time.monotonic() + 10
    while threading.active_count() != threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == threads


def test_from_socket_and_detach_cycles_leak_nothing(accept_and_close):
    srv = accept_and_close
    gc.collect()
    fds = fd_count()
    for _ in range(500):
        s = socket.create_connection(srv.address, timeout=5)
        c = socketkit.TcpClient.from_socket(s)
        back = c.detach()
        back.close()
        s.close()
    # The accept thread may still hold the last connections it accepted.
    assert srv.wait_accepted(500)
    gc.collect()
    assert fd_count() == fds


def test_udp_cycles_leak_nothing():
    gc.collect()
    fds = fd_count()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        for _ in range(2000):
            with socketkit.UdpClient(peer.getsockname(), timeout=1) as u:
                u.send(b"x")
    gc.collect()
    assert fd_count() == fds
