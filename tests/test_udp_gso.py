"""UDP GSO in send_many and GRO in recv_many: the receiver sees exactly the
datagrams sent, in order, with their boundaries, whether the batch went out
as GSO trains or plain (sendmmsg), and whether it came in coalesced (GRO)
or one by one (recvmmsg)."""

from __future__ import annotations

import socket
import sys

import pytest

import socketkit

UDP_SEGMENT = 103  # <linux/udp.h>; not in the socket module before 3.12


def _kernel_has_gso() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.getsockopt(socket.IPPROTO_UDP, UDP_SEGMENT)
        except OSError:
            return False
    return True


needs_gso = pytest.mark.skipif(not _kernel_has_gso(), reason="kernel without UDP GSO")


def _payloads() -> list[bytes]:
    """Runs that GSO can take (equal sizes, a shorter last one), sizes that
    break a run (a longer one, an empty one), every datagram distinct."""
    out = [b"%05d" % i + b"a" * 95 for i in range(150)]  # 100 B: trains of 64, 64, 22
    out += [b"short"]  # ends the last train
    out += [b"%04d" % i * 10 for i in range(20)]  # 40 B
    out += [b"", b"%03d" % 7, b"x" * 41]  # empty, then each longer than the last
    out += [b"%06d" % i * 200 for i in range(12)]  # 1,200 B
    return out


def _recv_stdlib(rx: socket.socket, n: int) -> list[tuple[bytes, tuple[str, int]]]:
    got = [rx.recvfrom(65536) for _ in range(n)]
    rx.settimeout(0.2)
    with pytest.raises(TimeoutError):
        extra = rx.recvfrom(65536)
        pytest.fail(f"one datagram too many: {extra!r}")
    return got


def _recv_socketkit(
    rx: socketkit.UdpSocket, n: int, max_messages: int = 64, bufsize: int = 65536
) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < n:
        batch = rx.recv_many(max_messages, bufsize)
        assert 1 <= len(batch) <= max_messages
        got += [d for d, _ in batch]
    rx.settimeout(0.2)
    with pytest.raises(TimeoutError):
        extra = rx.recv_many(max_messages, bufsize)
        pytest.fail(f"datagrams too many: {extra!r}")
    return got


def _stdlib_rx() -> socket.socket:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    return rx


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "plain"])
def test_send_many_to_stdlib_receiver_keeps_every_datagram(gso: bool) -> None:
    if gso and not _kernel_has_gso():
        pytest.skip("kernel without UDP GSO")
    payloads = _payloads()
    with _stdlib_rx() as rx, socketkit.UdpSocket(timeout=5) as tx:
        tx._set_offload(gso=gso, gro=gso)
        to = rx.getsockname()
        assert tx.send_many([(p, to) for p in payloads]) == len(payloads)
        got = _recv_stdlib(rx, len(payloads))
        assert [d for d, _ in got] == payloads
        assert {a for _, a in got} == {("127.0.0.1", tx.local_address[1])}
        trains, _ = tx._offload_counts()
        # 64 + 64 + 23 (with "short"), 20 x 40 B, 12 x 1,200 B: 5 trains.
        assert trains == (5 if gso else 0)


@needs_gso
def test_send_many_trains_split_by_destination_and_on_a_connected_socket() -> None:
    with _stdlib_rx() as a, _stdlib_rx() as b, socketkit.UdpClient(a.getsockname(), timeout=5) as tx:
        msgs: list[tuple[bytes, tuple[str, int]] | bytes] = []
        for i in range(30):
            msgs.append((b"A%03d" % i, a.getsockname()) if i % 10 < 5 else (b"B%03d" % i, b.getsockname()))
        msgs += [b"C%03d" % i for i in range(8)]  # bare data: the connected peer (a)
        assert tx.send_many(msgs) == 38
        want_a = [b"A%03d" % i for i in range(30) if i % 10 < 5] + [b"C%03d" % i for i in range(8)]
        want_b = [b"B%03d" % i for i in range(30) if i % 10 >= 5]
        assert [d for d, _ in _recv_stdlib(a, len(want_a))] == want_a
        assert [d for d, _ in _recv_stdlib(b, len(want_b))] == want_b
        assert tx._offload_counts()[0] == 7


@pytest.mark.parametrize("gro", [True, False], ids=["gro", "plain"])
def test_recv_many_cuts_coalesced_trains_back_into_datagrams(gro: bool) -> None:
    if gro and not _kernel_has_gso():
        pytest.skip("kernel without UDP GSO")
    payloads = _payloads()
    with (
        socketkit.UdpSocket(("127.0.0.1", 0), timeout=5, recv_buffer=1 << 22) as rx,
        socketkit.UdpSocket(timeout=5) as tx,
    ):
        rx._set_offload(gso=True, gro=gro)
        rx.settimeout(0.2)
        with pytest.raises(TimeoutError):
            rx.recv_many()  # turns GRO on (or not) before anything arrives
        rx.settimeout(5)
        assert tx.send_many([(p, rx.local_address) for p in payloads]) == len(payloads)
        assert tx._offload_counts()[0] == 5
        # max_messages below a train's length: the rest waits for the next call.
        assert _recv_socketkit(rx, len(payloads), max_messages=10) == payloads
        coalesced = rx._offload_counts()[1]
        assert coalesced >= 1 if gro else coalesced == 0


@needs_gso
def test_gro_leftovers_come_first_for_recvfrom_and_bufsize_truncates_each() -> None:
    with (
        socketkit.UdpSocket(("127.0.0.1", 0), timeout=5, recv_buffer=1 << 22) as rx,
        socketkit.UdpSocket(timeout=5) as tx,
    ):
        rx.settimeout(0.1)
        with pytest.raises(TimeoutError):
            rx.recv_many()
        rx.settimeout(5)
        train = [b"%02d" % i + b"-" * 30 for i in range(20)]
        assert tx.send_many([(d, rx.local_address) for d in train]) == 20
        first = rx.recv_many(3, bufsize=4)
        assert [d for d, _ in first] == [d[:4] for d in train[:3]]
        assert rx.recvfrom(8) == (train[3][:8], ("127.0.0.1", tx.local_address[1]))
        buf = bytearray(64)
        n, _ = rx.recvfrom_into(buf)
        assert bytes(buf[:n]) == train[4]
        assert _recv_socketkit(rx, 15, max_messages=64, bufsize=64) == train[5:]
        assert rx._offload_counts()[1] >= 1


@needs_gso
def test_send_many_falls_back_when_the_kernel_refuses_a_train() -> None:
    """SO_NO_CHECK (no UDP checksum) makes the kernel refuse GSO with
    EINVAL: the batch goes out plain, identical, and later ones too."""
    so_no_check = 11  # <asm-generic/socket.h>
    with _stdlib_rx() as rx, socketkit.UdpSocket(("127.0.0.1", 0), timeout=5) as tx:
        with socket.socket(fileno=socket.dup(tx.fileno())) as same:
            same.setsockopt(socket.SOL_SOCKET, so_no_check, 1)
        payloads = _payloads()
        for _ in range(2):
            assert tx.send_many([(p, rx.getsockname()) for p in payloads]) == len(payloads)
            assert [d for d, _ in _recv_stdlib(rx, len(payloads))] == payloads
            rx.settimeout(5)
        assert tx._offload_counts()[0] == 0


@needs_gso
def test_gso_and_gro_over_ipv6_loopback() -> None:
    try:
        rx = socketkit.UdpSocket(("::1", 0), timeout=5, recv_buffer=1 << 22)
    except OSError:
        pytest.skip("no IPv6 loopback")
    with rx, socketkit.UdpSocket(timeout=5) as tx:
        rx.settimeout(0.1)
        with pytest.raises(TimeoutError):
            rx.recv_many()
        rx.settimeout(5)
        payloads = _payloads()
        assert tx.send_many([(p, rx.local_address) for p in payloads]) == len(payloads)
        assert _recv_socketkit(rx, len(payloads)) == payloads
        assert tx._offload_counts()[0] == 5
        assert rx._offload_counts()[1] >= 1


def test_aio_send_many_uses_the_same_trains() -> None:
    # socketkit.aio's send_many drives the same batch sender as the blocking
    # one: same datagrams, same trains.
    if not _kernel_has_gso():
        pytest.skip("kernel without UDP GSO")
    import asyncio

    from socketkit import aio

    payloads = _payloads()

    async def send(to: tuple[str, int]) -> int:
        tx = await aio.AsyncUdpSocket.create(("127.0.0.1", 0))
        try:
            assert await tx.send_many([(p, to) for p in payloads]) == len(payloads)
            return tx._gso_trains()
        finally:
            tx.close()

    with _stdlib_rx() as rx:
        trains = asyncio.run(send(rx.getsockname()))
        assert [d for d, _ in _recv_stdlib(rx, len(payloads))] == payloads
    assert trains == 5
