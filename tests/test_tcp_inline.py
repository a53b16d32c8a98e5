"""TcpClient's recv and send calls try without waiting first, with the GIL
held (issue 16), and wait without it only when the socket has nothing: the
results, errors and thread behaviour must be those of the blocking calls."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time

import pytest
from peers import blocked_in_poll, can_see_blocked_threads

import socketkit


@pytest.fixture
def pair():
    """(TcpClient, the stdlib peer socket), both closed at the end."""
    srv = socket.create_server(("127.0.0.1", 0))
    with srv:
        c = socketkit.TcpClient(srv.getsockname(), timeout=5)
        peer, _ = srv.accept()
    with c, peer:
        yield c, peer


def wait_buffered(c: socketkit.TcpClient, peer: socket.socket, data: bytes) -> None:
    """Send `data` and wait until the kernel has it on c's side."""
    peer.sendall(data)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        if select.select([c.fileno()], [], [], 0.05)[0]:
            return
    raise AssertionError("data never arrived")


def test_every_recv_method_on_data_already_there(pair):
    c, peer = pair
    wait_buffered(c, peer, b"line one\nABCDEFrest-->|tail")
    assert c.recv_line() == b"line one\n"
    assert c.recv_exact(3) == b"ABC"
    buf = bytearray(3)
    assert c.recv_into(buf) == 3 and buf == b"DEF"
    assert c.recv_until(b"|") == b"rest-->|"
    assert c.recv(100) == b"tail"


def test_idle_socket_waits_and_times_out(pair):
    c, peer = pair
    c.settimeout(0.2)
    for call in (c.recv, c.recv_line, lambda: c.recv_exact(2), lambda: c.recv_into(bytearray(4))):
        t0 = time.monotonic()
        with pytest.raises(socketkit.TimeoutError):
            call()
        assert time.monotonic() - t0 >= 0.19
    # Then data arriving during the wait is read.
    threading.Timer(0.1, peer.sendall, (b"late\n",)).start()
    c.settimeout(5)
    assert c.recv_line() == b"late\n"


def test_zero_timeout_on_idle_socket_raises_at_once(pair):
    c, peer = pair
    c.settimeout(0)
    with pytest.raises(socketkit.TimeoutError):
        c.recv()
    peer.sendall(b"x")
    c.settimeout(5)
    assert c.recv() == b"x"


def test_eof_and_limits_when_everything_is_buffered(pair):
    c, peer = pair
    wait_buffered(c, peer, b"x" * 50 + b"\nab")
    with pytest.raises(socketkit.LimitExceededError):
        c.recv_line(max_size=10)
    peer.shutdown(socket.SHUT_WR)
    assert c.recv_line() == b"x" * 50 + b"\n"
    with pytest.raises(socketkit.ConnectionClosedError) as ei:
        c.recv_exact(5)
    assert ei.value.partial == b"ab"
    assert c.recv() == b""
    assert c.recv_line() == b""


def test_sendall_the_socket_takes_only_part_of(pair):
    """A small send buffer and a peer that reads late: the inline send
    stops part way and the rest goes out without the GIL; two threads'
    messages never interleave."""
    c, peer = pair
    msgs = [bytes([65 + i]) * 60_000 for i in range(6)]
    got = bytearray()

    def reader() -> None:
        time.sleep(0.3)
        while len(got) < 6 * 60_000:
            chunk = peer.recv(65536)
            assert chunk
            got.extend(chunk)

    rt = threading.Thread(target=reader)
    rt.start()
    ws = [threading.Thread(target=c.sendall, args=(m,)) for m in msgs[:3]]
    for w in ws:
        w.start()
    for m in msgs[3:]:
        c.sendall(m)
    for w in ws:
        w.join()
    rt.join()
    runs = [got[i : i + 60_000] for i in range(0, len(got), 60_000)]
    assert sorted(bytes(r) for r in runs) == sorted(msgs)


def test_sendall_to_a_reset_peer_reports_bytes_sent(pair):
    """The peer resets while sends go on: the failure is the blocking
    call's (a ConnectionError with ``bytes_sent``), whichever path saw it."""
    c, peer = pair
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    threading.Timer(0.2, peer.close).start()
    with pytest.raises(ConnectionError) as ei:
        for _ in range(100_000):
            c.sendall(b"y" * 1000)
    assert isinstance(ei.value, socketkit.Error)
    assert ei.value.bytes_sent is not None and 0 <= ei.value.bytes_sent <= 1000


def test_second_reader_waits_without_the_gil(pair):
    """One thread blocked in recv holds the read buffer; another reader
    must then wait for it with the GIL released, not deadlock."""
    c, peer = pair
    c.settimeout(None)
    results: list[bytes] = []
    first = threading.Thread(target=lambda: results.append(c.recv(1)))
    first.start()
    if can_see_blocked_threads():
        assert blocked_in_poll(first)
    else:
        time.sleep(0.3)
    second = threading.Thread(target=lambda: results.append(c.recv(1)))
    second.start()
    count = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.3:
        count += 1  # runs only if neither reader holds the GIL
    assert count > 1000
    peer.sendall(b"ab")
    first.join(5)
    second.join(5)
    assert sorted(results) == [b"a", b"b"]


def test_message_split_across_reads(pair):
    """Part of a message is there, the rest comes later: the inline read
    takes the part, the blocking call waits for the rest."""
    c, peer = pair
    wait_buffered(c, peer, b"par")
    threading.Timer(0.1, peer.sendall, (b"tial\nexa",)).start()
    assert c.recv_line() == b"partial\n"
    threading.Timer(0.1, peer.sendall, (b"ct",)).start()
    assert c.recv_exact(5) == b"exact"
