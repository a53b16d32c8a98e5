"""Helpers for the probe tests: loopback servers that the test stops,
/proc/net/tcp parsing, private network namespaces."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

# One implementation each, in peers.py; the probe tests know them by these names.
from peers import closed_tcp_port as closed_port  # noqa: F401
from peers import has_ipv6_loopback as has_ipv6  # noqa: F401

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


@contextlib.contextmanager
def listeners(n: int = 1, host: str = "127.0.0.1") -> Iterator[list[int]]:
    """``n`` listening sockets (never accepting); yields their ports."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(fam, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
            s.listen(128)
        yield [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A loopback port whose accept queue is full: Linux drops new SYNs,
    so connects hang until their timeout (the port looks filtered)."""
    lst = socket.socket()
    fillers: list[socket.socket] = []
    try:
        lst.bind(("127.0.0.1", 0))
        lst.listen(0)
        port = lst.getsockname()[1]
        for _ in range(2):
            c = socket.socket()
            fillers.append(c)
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
        time.sleep(0.05)
        yield port
    finally:
        for c in fillers:
            c.close()
        lst.close()


class Server:
    """A threaded loopback TCP server running ``handler(conn)`` per
    connection; stopped (and every socket closed) by ``close()``."""

    def __init__(self, handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                with contextlib.suppress(OSError):
                    self.handler(conn)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def proc_listening_loopback() -> set[int]:
    """TCP ports in LISTEN state reachable on 127.0.0.1: bound to
    127.0.0.1, 0.0.0.0 or :: (dual-stack) in /proc/net/tcp and tcp6."""
    v6_any = {"00000000000000000000000000000000", "0000000000000000FFFF00000100007F"}
    try:
        with open("/proc/sys/net/ipv6/bindv6only") as f:
            if f.read().strip() == "1":
                v6_any = {"0000000000000000FFFF00000100007F"}
    except FileNotFoundError:
        pass
    ports: set[int] = set()
    for path, wanted in (("/proc/net/tcp", {"0100007F", "00000000"}), ("/proc/net/tcp6", v6_any)):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr, port = local.split(":")
            if state == "0A" and addr in wanted:
                ports.add(int(port, 16))
    return ports


def enter_private_netns() -> None:
    """unshare(CLONE_NEWNET) for this process and bring ``lo`` up. Needs
    root (CAP_SYS_ADMIN); raises OSError otherwise."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def parse_nmap_grepable(text: str) -> set[int]:
    """Open ports from ``nmap -oG -`` output."""
    ports: set[int] = set()
    for line in text.splitlines():
        if "Ports:" not in line:
            continue
        for item in line.split("Ports:", 1)[1].split("\t")[0].split(","):
            parts = item.strip().split("/")
            if len(parts) > 2 and parts[1] == "open":
                ports.add(int(parts[0]))
    return ports
