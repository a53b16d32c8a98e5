"""Hostile sizes and counts (issue 15, items 1-3): a huge size or count from
the caller never aborts the interpreter, never allocates up front, and an
out-of-range int is a ValueError naming the argument.

Cases that used to abort the process (SIGABRT from a failed allocation) run
in a child, so a regression fails a test instead of killing pytest."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import _child
import pytest

import socketkit

HUGE = [2**40, 2**62]


def run_child(code: str, timeout: float = 60.0) -> str:
    """Run `code` in a fresh interpreter; its stdout, or a failed test
    naming how it died."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"child died with {proc.returncode}: {proc.stderr[:500]}"
    return proc.stdout


# A peer that sends GREETING on every connection, then waits for the client
# to close; with close=True it also shuts its side down (EOF after the
# greeting; a request the client still sends is read, not reset).
TCP_PEER = """
import socket, threading
import socketkit

GREETING = b"hello"

def serve(close):
    srv = socket.create_server(("127.0.0.1", 0))
    def run():
        while True:
            conn, _ = srv.accept()
            conn.sendall(GREETING)
            if close:
                conn.shutdown(socket.SHUT_WR)
            threading.Thread(target=conn.recv, args=(1,), daemon=True).start()
    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()
"""


@pytest.mark.parametrize("size", HUGE)
def test_tcp_recv_of_a_huge_size_returns_what_arrived(size: int) -> None:
    out = run_child(
        TCP_PEER
        + f"""
with socketkit.TcpClient(serve(close=False), timeout=10) as c:
    print(c.recv({size}))
"""
    )
    assert out.strip() == "b'hello'"


@pytest.mark.parametrize("size", HUGE)
def test_tcp_recv_exact_and_request_exact_of_a_huge_size_grow_as_bytes_arrive(size: int) -> None:
    out = run_child(
        TCP_PEER
        + f"""
addr = serve(close=True)
for call in (lambda c: c.recv_exact({size}), lambda c: c.request(b"x", exact={size})):
    with socketkit.TcpClient(addr, timeout=10) as c:
        try:
            call(c)
        except socketkit.ConnectionClosedError as e:
            print(e.partial)
"""
    )
    assert out.split() == ["b'hello'", "b'hello'"]


def test_a_buffer_the_allocator_refuses_is_memory_error() -> None:
    # Address space capped a little above what the interpreter uses: the
    # read buffer of recv_until(max_size=2**40) doubles as bytes arrive
    # until the allocator refuses; that must be MemoryError, not SIGABRT.
    out = run_child(
        """
import resource, socket, threading
import socketkit

srv = socket.create_server(("127.0.0.1", 0))
def flood():
    conn, _ = srv.accept()
    chunk = b"x" * (1 << 20)
    try:
        while True:
            conn.sendall(chunk)
    except OSError:
        pass
threading.Thread(target=flood, daemon=True).start()
c = socketkit.TcpClient(srv.getsockname(), timeout=30)
with open("/proc/self/statm") as f:
    vsize = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vsize + (256 << 20), resource.RLIM_INFINITY))
try:
    c.recv_until(b"\\n", max_size=2**40)
except MemoryError as e:
    print("MemoryError", e)
c.close()
"""
    )
    assert out.startswith("MemoryError cannot allocate"), out


UDP_PEER = """
import socket, threading
import socketkit

def echo():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    def run():
        while True:
            data, peer = s.recvfrom(65536)
            s.sendto(data, peer)
    threading.Thread(target=run, daemon=True).start()
    return s.getsockname()

addr = echo()
u = socketkit.UdpSocket(("127.0.0.1", 0), timeout=10)
"""


@pytest.mark.parametrize("size", HUGE)
def test_udp_receives_of_a_huge_bufsize_return_the_datagram(size: int) -> None:
    out = run_child(
        UDP_PEER
        + f"""
u.sendto(b"one", addr)
print(u.recvfrom({size})[0])
u.sendto(b"two", addr)
print([d for d, _ in u.recv_many(1, {size})])
print(u.request(b"three", addr, bufsize={size}))
"""
    )
    assert out.split() == ["b'one'", "[b'two']", "b'three'"]


@pytest.mark.parametrize("size", HUGE)
def test_banner_of_a_huge_max_bytes_returns_the_greeting(size: int) -> None:
    out = run_child(
        TCP_PEER
        + f"""
host, port = serve(close=True)
print(socketkit.banner(host, port, max_bytes={size}, timeout=10))
"""
    )
    assert out.strip() == "b'hello'"


# Item 2: tcping's count is a bound on a stream of pings, not a size to
# allocate: the child pings until interrupted.
@pytest.mark.parametrize("count", [2**31, 2**62])
def test_tcping_of_a_huge_count_pings_until_interrupted(count: int) -> None:
    proc = _child.start(
        f"""
import socket
import socketkit
refusing = socket.socket()
refusing.bind(("127.0.0.1", 0))
print("READY")
try:
    socketkit.tcping(*refusing.getsockname(), count={count}, interval=0, timeout=1)
except KeyboardInterrupt:
    print("INTERRUPTED")
"""
    )
    outcome = _child.interrupt(proc)
    assert outcome.returncode == 0, outcome
    assert "INTERRUPTED" in outcome.stdout, outcome


def test_a_count_past_every_range_is_a_value_error_naming_it() -> None:
    for call in (socketkit.tcping, socketkit._probe_core._tcping_iter):
        with pytest.raises(ValueError, match="count is too large"):
            call("127.0.0.1", 9, count=2**64)


# Item 3: ints past every range are ValueErrors naming the argument.
def _tcp_pair() -> tuple[socketkit.TcpClient, object]:
    import socket

    srv = socket.create_server(("127.0.0.1", 0))
    c = socketkit.TcpClient(srv.getsockname(), timeout=5)
    conn, _ = srv.accept()
    srv.close()
    return c, conn


@pytest.mark.parametrize("value", [2**64, 2**200])
def test_huge_ints_are_value_errors_naming_the_argument(value: int) -> None:
    c, conn = _tcp_pair()
    u = socketkit.UdpSocket(("127.0.0.1", 0))
    cases = {
        "retries": [
            lambda: socketkit.Keepalive(retries=value),
            lambda: u.request(b"x", ("127.0.0.1", 9), retries=value),
            lambda: socketkit.udp_probe("127.0.0.1", 9, retries=value),
        ],
        "max_size": [
            lambda: c.recv_line(max_size=value),
            lambda: c.recv_until(b"\n", max_size=value),
        ],
        "max_messages": [lambda: u.recv_many(max_messages=value)],
    }
    try:
        for arg, calls in cases.items():
            for call in calls:
                with pytest.raises(ValueError, match=arg) as info:
                    call()
                assert "too large" in str(info.value) or "must be" in str(info.value)
    finally:
        c.close()
        conn.close()  # type: ignore[attr-defined]
        u.close()
