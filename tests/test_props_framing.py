"""Property tests (Hypothesis): messages sent to a real TcpServer cut at
arbitrary byte boundaries come back whole, in order and unchanged, in
on_message line and length framing and in handler mode (``lines()`` and
``recv_exact``). The servers run for the whole module and are stopped at
its end; each example is one connection."""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Iterator

import pytest
from _hypothesis_util import bounded
from _server_util import connect, frame, recv_exactly
from hypothesis import given
from hypothesis import strategies as st

import socketkit

LOCAL = ("127.0.0.1", 0)
FAST = bounded(60)

# A line is any bytes but '\n' ('\r' included: it stays part of the line).
lines = st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=20)
blobs = st.lists(st.binary(max_size=2000), min_size=1, max_size=12)
cuts = st.lists(st.integers(0, 1 << 16), max_size=12)


def mark(m: bytes) -> bytes:
    """What every server here answers: the message, bracketed (so an empty
    message has a non-empty reply)."""
    return b"<" + m + b">"


def handler_lines(conn: socketkit.TcpClient) -> None:
    for line in conn.lines():
        conn.sendall(mark(line[:-1]) + b"\n")


def handler_exact(conn: socketkit.TcpClient) -> None:
    while True:
        try:
            header = conn.recv_exact(4)
        except socketkit.ConnectionClosedError:
            return
        (n,) = struct.unpack(">I", header)
        conn.sendall(frame(mark(conn.recv_exact(n))))


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, tuple[str, int]]]:
    made = {
        "on_message-line": socketkit.TcpServer(LOCAL, on_message=mark, framing="line"),
        "on_message-length": socketkit.TcpServer(LOCAL, on_message=mark, framing="length"),
        "handler-lines": socketkit.TcpServer(LOCAL, handler_lines),
        "handler-recv_exact": socketkit.TcpServer(LOCAL, handler_exact),
    }
    try:
        for s in made.values():
            s.start()
        yield {k: s.address for k, s in made.items()}
    finally:
        for s in made.values():
            s.stop()


def send_in_pieces(address: tuple[str, int], stream: bytes, points: list[int], want: bytes) -> bytes:
    """Send `stream` cut at `points` (one send each, Nagle off so the cuts
    reach the server as separate segments), then read len(want) bytes."""
    bounds = sorted({p % (len(stream) + 1) for p in points} | {0, len(stream)})
    with connect(address) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for a, b in itertools.pairwise(bounds):
            c.sendall(stream[a:b])
        return recv_exactly(c, len(want))


@FAST
@given(msgs=lines, points=cuts)
def test_on_message_line_round_trip(servers, msgs: list[bytes], points: list[int]) -> None:
    stream = b"".join(m + b"\n" for m in msgs)
    want = b"".join(mark(m) + b"\n" for m in msgs)
    assert send_in_pieces(servers["on_message-line"], stream, points, want) == want


@FAST
@given(msgs=lines, points=cuts)
def test_handler_lines_round_trip(servers, msgs: list[bytes], points: list[int]) -> None:
    stream = b"".join(m + b"\n" for m in msgs)
    want = b"".join(mark(m) + b"\n" for m in msgs)
    assert send_in_pieces(servers["handler-lines"], stream, points, want) == want


@FAST
@given(msgs=blobs, points=cuts)
def test_on_message_length_round_trip(servers, msgs: list[bytes], points: list[int]) -> None:
    stream = b"".join(frame(m) for m in msgs)
    want = b"".join(frame(mark(m)) for m in msgs)
    assert send_in_pieces(servers["on_message-length"], stream, points, want) == want


@FAST
@given(msgs=blobs, points=cuts)
def test_handler_recv_exact_round_trip(servers, msgs: list[bytes], points: list[int]) -> None:
    stream = b"".join(frame(m) for m in msgs)
    want = b"".join(frame(mark(m)) for m in msgs)
    assert send_in_pieces(servers["handler-recv_exact"], stream, points, want) == want


@FAST
@given(msgs=lines, points=cuts, split_crlf=st.booleans())
def test_on_message_line_crlf_is_kept(
    servers, msgs: list[bytes], points: list[int], split_crlf: bool
) -> None:
    # "\r\n" lines: the '\r' is part of the message, even when a cut falls
    # between '\r' and '\n'.
    stream = b"".join(m + b"\r\n" for m in msgs)
    if split_crlf:
        points = [*points, len(msgs[0]) + 1]
    want = b"".join(mark(m + b"\r") + b"\n" for m in msgs)
    assert send_in_pieces(servers["on_message-line"], stream, points, want) == want
