"""Helpers for the server tests: stdlib clients run concurrently, exact
reads, and polling for a condition (never a sleep as a sync point)."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

TIMEOUT = 10.0


def connect(address: tuple[str, int], timeout: float = TIMEOUT) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


def recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_line(s: socket.socket, limit: int = 1 << 20) -> bytes:
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            raise ConnectionError(f"closed after {bytes(buf)!r}")
        buf += chunk
        assert len(buf) <= limit
    return bytes(buf)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def recv_frame(s: socket.socket) -> bytes:
    (n,) = struct.unpack(">I", recv_exactly(s, 4))
    return recv_exactly(s, n)


def closed_by_peer(s: socket.socket, within: float = 5.0) -> bool:
    """True when the other side closes (EOF or reset) within `within` s."""
    s.settimeout(within)
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def run_clients(n: int, client: Callable[[int], None]) -> None:
    """Run `client(i)` for i in range(n), all at once; re-raise any failure."""
    with ThreadPoolExecutor(max_workers=n) as pool:
        for f in [pool.submit(client, i) for i in range(n)]:
            f.result(timeout=60)


def wait_until(cond: Callable[[], bool], within: float = 5.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def echo_lines(conn: Any) -> None:
    """A handler-mode handler that echoes line by line."""
    for line in conn.lines():
        conn.sendall(line)
