"""UdpSocket and UdpClient (DESIGN.md section 2) against stdlib peers."""

from __future__ import annotations

import errno
import socket
import struct
import threading
import time

import pytest
from peers import blocked_in_poll, can_see_blocked_threads, needs_ipv6

import socketkit


def stdlib_udp(host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(5)
    return s


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- bind / sendto / recvfrom -------------------------------------------------------


def test_bind_sendto_recvfrom(udp_echo):
    with socketkit.UdpSocket(("127.0.0.1", 0), timeout=5) as u:
        host, port = u.local_address
        assert host == "127.0.0.1" and port > 0
        assert u.peer_address is None
        for i in range(20):
            msg = b"datagram %d" % i
            assert u.sendto(msg, udp_echo.address) == len(msg)
            data, addr = u.recvfrom()
            assert data == msg
            assert addr == udp_echo.address


def test_address_forms(udp_echo):
    host, port = udp_echo.address
    with socketkit.UdpSocket("127.0.0.1:0", timeout=5) as u:
        u.sendto(b"str form", f"{host}:{port}")
        assert u.recvfrom() == (b"str form", udp_echo.address)
        u.sendto(b"list form", [host, port])
        assert u.recvfrom()[0] == b"list form"


def test_datagram_boundaries_and_truncation():
    with stdlib_udp() as peer, socketkit.UdpSocket(("127.0.0.1", 0), timeout=5) as u:
        peer.sendto(b"A" * 100, u.local_address)
        peer.sendto(b"second", u.local_address)
        data, _ = u.recvfrom(10)
        assert data == b"A" * 10  # the rest of that datagram is dropped
        assert u.recvfrom(100)[0] == b"second"
        peer.sendto(b"", u.local_address)
        assert u.recvfrom()[0] == b""  # an empty datagram is a datagram


def test_recvfrom_into():
    with stdlib_udp() as peer, socketkit.UdpSocket(("127.0.0.1", 0), timeout=5) as u:
        peer.sendto(b"hello world", u.local_address)
        buf = bytearray(32)
        n, addr = u.recvfrom_into(buf)
        assert (n, addr) == (11, peer.getsockname())
        assert buf[:n] == b"hello world"

        peer.sendto(b"0123456789", u.local_address)
        big = bytearray(b"." * 12)
        n, _ = u.recvfrom_into(memoryview(big)[2:], 4)
        assert n == 4
        assert big == b"..0123......"
        with pytest.raises(ValueError, match="nbytes"):
            u.recvfrom_into(bytearray(4), 8)
        with pytest.raises(TypeError, match="buffer"):
            u.recvfrom_into(b"read-only")


def test_recvfrom_times_out():
    with socketkit.UdpSocket(("127.0.0.1", 0), timeout=0.2) as u:
        t0 = time.monotonic()
        with pytest.raises(socket.timeout) as ei:
            u.recvfrom()
        assert time.monotonic() - t0 < 5
        assert isinstance(ei.value, socketkit.TimeoutError)
        assert ei.value.phase == "recv"


def test_recvfrom_before_the_socket_exists_is_an_error():
    with socketkit.UdpSocket(timeout=1) as u:
        assert u.closed  # nothing made yet
        assert u.fileno() == -1
        with pytest.raises(OSError, match=r"send first|bind"):
            u.recvfrom()


# --- connect / send / recv --------------------------------------------------------------


def test_connect_keyword_then_send_recv(udp_echo):
    with socketkit.UdpSocket(connect=udp_echo.address, timeout=5) as u:
        assert u.peer_address == udp_echo.address
        assert u.local_address is not None
        assert u.send(b"connected") == 9
        assert u.recv() == b"connected"


def test_connect_method_filters_other_senders(udp_echo):
    with stdlib_udp() as stranger, socketkit.UdpSocket(("127.0.0.1", 0), timeout=5) as u:
        u.connect(udp_echo.address)
        assert u.peer_address == udp_echo.address
        # The kernel drops datagrams from anyone but the connected peer.
        stranger.sendto(b"noise", u.local_address)
        u.send(b"signal")
        assert u.recv() == b"signal"


def test_send_without_connect_is_an_error():
    with socketkit.UdpSocket(("127.0.0.1", 0), timeout=1) as u:
        with pytest.raises(OSError, match="not connected"):
            u.send(b"x")


def test_udp_client(udp_echo):
    with socketkit.UdpClient(udp_echo.address, timeout=5) as c:
        assert isinstance(c, socketkit.UdpSocket)
        assert c.peer_address == udp_echo.address
        c.send(b"one")
        assert c.recv() == b"one"
        assert c.request(b"two") == b"two"
        r = repr(c)
        assert "UdpClient" in r and f"127.0.0.1:{udp_echo.address[1]}" in r and "open" in r
    assert c.closed
    assert "closed" in repr(c)


def test_udp_client_with_bind(udp_echo):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socketkit.UdpClient(udp_echo.address, bind=("127.0.0.1", port), timeout=5) as c:
        assert c.local_address == ("127.0.0.1", port)
        assert c.request(b"bound") == b"bound"


def test_connected_send_to_closed_port_is_refused():
    port = closed_udp_port()
    with socketkit.UdpClient(("127.0.0.1", port), timeout=2) as c:
        c.send(b"anyone?")
        with pytest.raises(ConnectionRefusedError) as ei:
            c.recv()
        assert ei.value.errno == errno.ECONNREFUSED
        assert isinstance(ei.value, socketkit.ConnectionRefusedError)


# --- request ------------------------------------------------------------------------------


def test_request_resends_when_the_first_datagram_is_dropped(udp_peer):
    seen = []

    def drop_first(data: bytes, addr, sock: socket.socket) -> None:
        seen.append(data)
        if len(seen) >= 2:
            sock.sendto(b"pong:" + data, addr)

    peer = udp_peer(drop_first)
    with socketkit.UdpSocket(("127.0.0.1", 0)) as u:
        t0 = time.monotonic()
        reply = u.request(b"ping", peer.address, timeout=0.2, retries=3)
        assert time.monotonic() - t0 < 5
    assert reply == b"pong:ping"
    # The first datagram was dropped, the resend answered (a third send can
    # happen only if the answer took longer than a try).
    assert len(seen) >= 2 and set(seen) == {b"ping"}


def test_request_connected_and_ignores_strangers(udp_peer):
    def noisy(data: bytes, addr, sock: socket.socket) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.sendto(b"not the answer", addr)
        sock.sendto(b"answer", addr)

    peer = udp_peer(noisy)
    # Unconnected socket: request() must skip the stranger's datagram.
    with socketkit.UdpSocket(("127.0.0.1", 0), timeout=5) as u:
        assert u.request(b"q", f"127.0.0.1:{peer.address[1]}", timeout=2, retries=0) == b"answer"
    with socketkit.UdpClient(peer.address) as c:
        assert c.request(b"q", timeout=2, retries=0) == b"answer"


def test_request_times_out_after_every_retry():
    silent = stdlib_udp()  # bound, never answers
    with silent, socketkit.UdpSocket(("127.0.0.1", 0)) as u:
        t0 = time.monotonic()
        with pytest.raises(socket.timeout) as ei:
            u.request(b"hello?", silent.getsockname(), timeout=0.1, retries=2)
        elapsed = time.monotonic() - t0
        assert isinstance(ei.value, socketkit.TimeoutError)
        assert isinstance(ei.value, TimeoutError)
        assert ei.value.errno == errno.ETIMEDOUT
        assert 0.25 <= elapsed < 5  # three tries of 0.1 s, generously bounded
        got = []
        silent.settimeout(1)
        for _ in range(3):
            got.append(silent.recvfrom(100)[0])
        assert got == [b"hello?"] * 3


def test_request_argument_errors():
    with socketkit.UdpSocket(("127.0.0.1", 0)) as u:
        with pytest.raises(ValueError, match="address"):
            u.request(b"x")  # unconnected and no address
        with pytest.raises(ValueError, match="timeout"):
            u.request(b"x", "127.0.0.1:9", timeout=-1)
        with pytest.raises(ValueError, match="retries"):
            u.request(b"x", "127.0.0.1:9", retries=-1)
        with pytest.raises(TypeError, match="data"):
            u.request("text", "127.0.0.1:9")


# --- multicast and broadcast -------------------------------------------------------------


@pytest.mark.parametrize("group", ["224.1.1.1", "239.255.42.99"])
def test_multicast_join_and_leave_on_loopback(group):
    with socketkit.UdpSocket((group, 0), timeout=2, multicast_loop=True, multicast_ttl=0) as rx:
        o = rx.options()
        assert o["multicast_loop"] is True
        assert o["multicast_ttl"] == 0
        rx.join_multicast(group, "127.0.0.1")
        with pytest.raises(OSError):
            rx.join_multicast(group, "127.0.0.1")  # already a member: EADDRINUSE
        rx.leave_multicast(group, "127.0.0.1")
        with pytest.raises(OSError):
            rx.leave_multicast(group, "127.0.0.1")  # not a member any more
        rx.join_multicast(group)  # the kernel picks the interface
        rx.leave_multicast(group)


def test_multicast_datagram_reaches_the_group_on_loopback():
    group = "239.255.42.98"
    with socketkit.UdpSocket((group, 0), timeout=2, multicast_loop=True) as rx:
        rx.join_multicast(group, "127.0.0.1")
        # The sender is pinned to lo with TTL 0: nothing leaves the host. (Linux
        # loops group datagrams back on lo even without its MULTICAST flag.)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 0))
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            tx.sendto(b"to the group", (group, rx.local_address[1]))
        assert rx.recvfrom()[0] == b"to the group"
        rx.leave_multicast(group, "127.0.0.1")


def test_multicast_argument_errors():
    with socketkit.UdpSocket(("127.0.0.1", 0)) as u:
        with pytest.raises(ValueError, match="group"):
            u.join_multicast("127.0.0.1")
        with pytest.raises(ValueError, match="group"):
            u.join_multicast("not an ip")
        with pytest.raises(ValueError, match="interface"):
            u.join_multicast("239.255.0.1", "lo")  # IPv4 wants the interface's address
        with pytest.raises(TypeError, match="group"):
            u.join_multicast(239)


@needs_ipv6
def test_ipv6_multicast_join_leave_by_interface_name():
    with socketkit.UdpSocket(("::1", 0)) as u:
        u.join_multicast("ff02::1:3", "lo")
        u.leave_multicast("ff02::1:3", "lo")
        with pytest.raises(ValueError, match="interface"):
            u.join_multicast("ff02::1:3", "no-such-if0")


def test_broadcast_option_set_and_read_back():
    with socketkit.UdpSocket(("127.0.0.1", 0), broadcast=True) as u:
        assert u.options()["broadcast"] is True
        s = socket.socket(fileno=u.detach().detach())
        with s:
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
    with socketkit.UdpSocket(("127.0.0.1", 0)) as u:
        assert u.options()["broadcast"] is False


# --- IPv6 ----------------------------------------------------------------------------------


@needs_ipv6
def test_ipv6_loopback_both_directions():
    with stdlib_udp("::1") as peer, socketkit.UdpSocket(("::1", 0), timeout=5) as u:
        assert u.local_address[0] == "::1"
        port = peer.getsockname()[1]
        u.sendto(b"v6 out", f"[::1]:{port}")
        data, addr = peer.recvfrom(100)
        assert data == b"v6 out"
        assert addr[:2] == u.local_address
        peer.sendto(b"v6 back", addr)
        assert u.recvfrom() == (b"v6 back", ("::1", port))
        assert "only_v6" in u.options()


@needs_ipv6
def test_ipv6_lazy_socket_takes_the_destination_family(udp_echo, udp_peer):
    v6 = udp_peer(lambda d, a, s: s.sendto(d, a), "::1")
    with socketkit.UdpSocket(timeout=5) as u:
        u.sendto(b"x", v6.address)
        assert u.local_address[0] == "::"  # bound implicitly, like the stdlib
        assert u.recvfrom() == (b"x", v6.address)
        with pytest.raises(ValueError, match="family"):
            u.sendto(b"x", udp_echo.address)  # IPv4 target on an IPv6 socket


# --- lifecycle -------------------------------------------------------------------------------


def test_close_fileno_detach_and_repr():
    u = socketkit.UdpSocket(("127.0.0.1", 0), timeout=2.5)
    r = repr(u)
    assert "UdpSocket" in r and "127.0.0.1" in r and "open" in r and "2.5" in r
    fd = u.fileno()
    assert fd >= 0
    local = u.local_address
    s = u.detach()
    assert u.closed and u.fileno() == -1
    with s:
        assert s.fileno() == fd
        assert s.getsockname() == local
        assert s.gettimeout() == 2.5
    u.close()  # idempotent
    with pytest.raises(OSError) as ei:
        u.sendto(b"x", ("127.0.0.1", 9))
    assert ei.value.errno == errno.EBADF


@pytest.mark.skipif(
    not can_see_blocked_threads(), reason="finding a blocked thread reads /proc/<tid>/syscall"
)
def test_close_from_another_thread_wakes_recvfrom():
    u = socketkit.UdpSocket(("127.0.0.1", 0))  # no timeout
    out: list[object] = []

    def reader() -> None:
        try:
            out.append(u.recvfrom())
        except OSError as e:
            out.append(e)

    t = threading.Thread(target=reader)
    t.start()
    assert blocked_in_poll(t), "the reader never blocked in poll"
    u.close()
    t.join(5)
    assert not t.is_alive(), "close() did not wake the blocked recvfrom"
    assert len(out) == 1 and isinstance(out[0], OSError), out
    assert out[0].errno == errno.EBADF
