"""Stdlib peers and helpers for the tests: TCP and UDP servers in threads,
free ports, hashing readers. Fixtures that start and stop them live in
conftest.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import selectors
import socket
import threading
import time
from collections.abc import Callable

import pytest

POLL = 0.05  # how often a server thread looks at its stop flag (seconds)
JOIN = 10.0  # how long teardown waits for a server thread


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (bound, read back, released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def closed_tcp_port(host: str = "127.0.0.1") -> int:
    """A TCP port that refuses connections."""
    return free_port(host)


def recv_all(conn: socket.socket, limit: int = 1 << 30) -> bytes:
    """Read until EOF (bounded by `limit` bytes)."""
    chunks = []
    total = 0
    while total < limit:
        b = conn.recv(1 << 20)
        if not b:
            break
        chunks.append(b)
        total += len(b)
    return b"".join(chunks)


def sha256_until_eof(conn: socket.socket) -> tuple[str, int]:
    """Hash of everything read until EOF, and how many bytes."""
    h = hashlib.sha256()
    n = 0
    while True:
        b = conn.recv(1 << 20)
        if not b:
            return h.hexdigest(), n
        h.update(b)
        n += len(b)


def echo_handler(conn: socket.socket) -> None:
    """Echo every byte back until the client closes."""
    while True:
        try:
            data = conn.recv(1 << 20)
        except (ConnectionResetError, ConnectionAbortedError):
            return
        if not data:
            return
        try:
            conn.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return


class TcpPeer:
    """A stdlib TCP server in a thread that runs `handler(conn)` per
    connection, each in its own thread."""

    def __init__(
        self,
        handler: Callable[[socket.socket], None],
        host: str = "127.0.0.1",
        *,
        backlog: int = 128,
        listener_setup: Callable[[socket.socket], None] | None = None,
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.handler = handler
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if listener_setup is not None:
            listener_setup(self.listener)
        self.listener.bind((host, 0))
        self.listener.listen(backlog)
        self.listener.setblocking(False)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.errors: list[BaseException] = []
        self.accepted = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._accept_loop, name="peer-accept", daemon=True)
        # Listening already: a client may connect as soon as __init__ returns.
        self._thread.start()

    @property
    def addr_str(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not sel.select(POLL):
                    continue
                try:
                    conn, _ = self.listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                with self._lock:
                    self.accepted += 1
                    self._conns.append(conn)
                    t = threading.Thread(target=self._run, args=(conn,), name="peer-conn", daemon=True)
                    self._threads.append(t)
                t.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except BaseException as e:
            if not self._stop.is_set():
                self.errors.append(e)
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(JOIN)
        self.listener.close()
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for t in threads:
            t.join(JOIN)
        assert not self._thread.is_alive(), "accept thread did not stop"
        assert not any(t.is_alive() for t in threads), "a peer handler did not stop"


class UdpPeer:
    """A stdlib UDP socket in a thread that calls `handler(data, addr, sock)`
    per datagram."""

    def __init__(
        self, handler: Callable[[bytes, tuple, socket.socket], None], host: str = "127.0.0.1"
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(POLL)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.handler = handler
        self.received: list[bytes] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="udp-peer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError as e:
                if not self._stop.is_set():
                    self.errors.append(e)
                return
            self.received.append(data)
            try:
                self.handler(data, addr, self.sock)
            except BaseException as e:
                self.errors.append(e)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(JOIN)
        self.sock.close()
        assert not self._thread.is_alive(), "UDP peer thread did not stop"


def has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")


# Syscall numbers of poll/ppoll, where a socketkit call blocks between slices.
_POLL_SYSCALLS = {"x86_64": {"7", "271"}, "aarch64": {"73"}}


def can_see_blocked_threads() -> bool:
    return platform.system() == "Linux" and platform.machine() in _POLL_SYSCALLS


def blocked_in_poll(thread: threading.Thread, within: float = 5.0) -> bool:
    """Wait (polling /proc/self/task/<tid>/syscall) until `thread` sits in
    poll/ppoll; False if it does not within `within` seconds."""
    calls = _POLL_SYSCALLS.get(platform.machine(), set())
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        tid = thread.native_id
        if tid is not None:
            try:
                with open(f"/proc/self/task/{tid}/syscall") as f:
                    if f.read().split()[0] in calls:
                        return True
            except (OSError, IndexError):
                pass
        time.sleep(0.01)
    return False


MiB = 1 << 20


def serve_bytes(payload: bytes, *, then_close: bool = True):
    """A handler that sends `payload` in one write, then closes."""

    def handler(conn: socket.socket) -> None:
        conn.sendall(payload)
        if not then_close:
            recv_all(conn)

    return handler
