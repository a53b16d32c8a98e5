"""Every TcpClient method (DESIGN.md section 2) against stdlib peers."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import tempfile
import time

import pytest
from peers import MiB, recv_all, serve_bytes, sha256_until_eof

import socketkit

# --- recv family ---------------------------------------------------------------


def test_recv_returns_empty_bytes_at_eof(tcp_peer):
    srv = tcp_peer(serve_bytes(b"data"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        assert c.recv_exact(4) == b"data"
        assert c.recv() == b""
        assert c.recv(10) == b""  # stays at EOF
        assert c.recv(0) == b""


def test_recv_bufsize_bounds_each_read(tcp_peer):
    srv = tcp_peer(serve_bytes(b"0123456789"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        out = []
        for _ in range(20):
            b = c.recv(3)
            assert len(b) <= 3
            if not b:
                break
            out.append(b)
        assert b"".join(out) == b"0123456789"


def test_recv_into_bytearray_memoryview_and_nbytes(tcp_peer):
    srv = tcp_peer(serve_bytes(b"abcdefghijklmnopqrstuvwxyz"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        # Fill the buffer first so recv_into has data buffered or in the kernel.
        first = c.recv_exact(2)
        assert first == b"ab"

        buf = bytearray(4)
        assert c.recv_into(buf) == 4
        assert buf == b"cdef"

        big = bytearray(b"." * 10)
        mv = memoryview(big)[3:]
        n = c.recv_into(mv, 5)  # nbytes caps the read
        assert n == 5
        assert big == b"...ghijk.."

        buf = bytearray(100)
        got = 0
        for _ in range(20):
            n = c.recv_into(memoryview(buf)[got:])
            if n == 0:
                break
            got += n
        assert bytes(buf[:got]) == b"lmnopqrstuvwxyz"
        assert c.recv_into(bytearray(8)) == 0  # EOF


def test_recv_into_rejects_bad_buffers(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        with pytest.raises(TypeError, match="buffer"):
            c.recv_into(b"read-only bytes")
        with pytest.raises(TypeError, match="buffer"):
            c.recv_into("text")
        with pytest.raises(ValueError, match="nbytes"):
            c.recv_into(bytearray(4), 5)
        with pytest.raises(ValueError, match="nbytes"):
            c.recv_into(bytearray(4), -1)


def test_recv_exact_over_a_peer_writing_one_byte_at_a_time(tcp_peer):
    payload = bytes(range(256)) * 2

    def handler(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(payload)):
            conn.sendall(payload[i : i + 1])
            if i % 16 == 0:
                time.sleep(0.001)  # pacing so the bytes arrive as many segments
        recv_all(conn)

    srv = tcp_peer(handler)
    with socketkit.TcpClient(srv.address, timeout=10) as c:
        assert c.recv_exact(100) == payload[:100]
        assert c.recv_exact(1) == payload[100:101]
        assert c.recv_exact(len(payload) - 101) == payload[101:]
        assert c.recv_exact(0) == b""


def test_recv_exact_partial_on_early_close(tcp_peer):
    srv = tcp_peer(serve_bytes(b"abc"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        with pytest.raises(socketkit.ConnectionClosedError) as ei:
            c.recv_exact(10)
        e = ei.value
        assert e.partial == b"abc"
        assert isinstance(e, ConnectionError)
        assert isinstance(e, socketkit.Error)
        assert isinstance(e, OSError)
        assert e.phase == "recv"
        assert "3" in str(e) and "10" in str(e)


def test_recv_until_partial_on_early_close(tcp_peer):
    srv = tcp_peer(serve_bytes(b"no delimiter here"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        with pytest.raises(socketkit.ConnectionClosedError) as ei:
            c.recv_until(b"\r\n")
        assert ei.value.partial == b"no delimiter here"


def test_recv_until_finds_delimiters(tcp_peer):
    srv = tcp_peer(serve_bytes(b"HTTP/1.0 200 OK\r\nA: b\r\n\r\nbody"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        assert c.recv_until(b"\r\n") == b"HTTP/1.0 200 OK\r\n"
        assert c.recv_until(bytearray(b"\r\n\r\n")) == b"A: b\r\n\r\n"
        assert c.recv() == b"body"


def test_recv_until_max_size_raises_limit_exceeded(tcp_peer):
    srv = tcp_peer(serve_bytes(b"x" * 5000 + b"\n", then_close=False))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        with pytest.raises(socketkit.LimitExceededError) as ei:
            c.recv_until(b"\n", max_size=100)
        assert isinstance(ei.value, socketkit.Error)
        assert "100" in str(ei.value)


def test_recv_until_delimiter_just_past_max_size(tcp_peer):
    srv = tcp_peer(serve_bytes(b"a" * 10 + b"\n" + b"b" * 5 + b"\n", then_close=False))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        # The line with its delimiter is 11 bytes: over a bound of 10.
        with pytest.raises(socketkit.LimitExceededError):
            c.recv_until(b"\n", max_size=10)


def test_recv_until_at_exactly_max_size_succeeds(tcp_peer):
    srv = tcp_peer(serve_bytes(b"a" * 9 + b"\n" + b"b" * 7 + b"\r\n"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        assert c.recv_until(b"\n", max_size=10) == b"a" * 9 + b"\n"
        assert c.recv_line(max_size=9) == b"b" * 7 + b"\r\n"


def test_multibyte_delimiter_split_across_one_byte_writes(tcp_peer):
    payload = b"head\r\n\r\nbody\r\n\r\n" + b"x\r\r\n\n\r\n\r\n"

    def handler(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(payload)):
            conn.sendall(payload[i : i + 1])
            time.sleep(0.001)  # pacing: many small segments
        recv_all(conn)

    srv = tcp_peer(handler)
    with socketkit.TcpClient(srv.address, timeout=10) as c:
        assert c.recv_until(b"\r\n\r\n") == b"head\r\n\r\n"
        assert c.recv_until(b"\r\n\r\n") == b"body\r\n\r\n"
        assert c.recv_until(b"\r\n\r\n") == b"x\r\r\n\n\r\n\r\n"


def test_recv_line_max_size(tcp_peer):
    srv = tcp_peer(serve_bytes(b"y" * 300, then_close=False))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        with pytest.raises(socketkit.LimitExceededError):
            c.recv_line(max_size=64)


def test_recv_line_then_recv_loses_no_bytes(tcp_peer):
    srv = tcp_peer(serve_bytes(b"line1\nline2\nrest-of-data"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        assert c.recv_line() == b"line1\n"
        data = b""
        for _ in range(10):
            chunk = c.recv(1024)
            if not chunk:
                break
            data += chunk
        assert data == b"line2\nrest-of-data"


def test_mixing_every_recv_method_keeps_the_stream_in_order(tcp_peer):
    payload = b"L1\nEXACT" + b"abc;" + b"into" + b"L2\ntail"
    srv = tcp_peer(serve_bytes(payload))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        assert c.recv_line() == b"L1\n"
        assert c.recv_exact(5) == b"EXACT"
        assert c.recv_until(b";") == b"abc;"
        buf = bytearray(4)
        assert c.recv_into(buf) == 4 and buf == b"into"
        assert list(c.lines()) == [b"L2\n", b"tail"]


def test_recv_line_returns_unterminated_rest_then_empty(tcp_peer):
    srv = tcp_peer(serve_bytes(b"a\nb"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        assert c.recv_line() == b"a\n"
        assert c.recv_line() == b"b"
        assert c.recv_line() == b""


def test_lines_iterates_until_eof(tcp_peer):
    lines = [f"line {i}\n".encode() for i in range(1000)]
    srv = tcp_peer(serve_bytes(b"".join(lines) + b"last"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        assert list(c.lines()) == [*lines, b"last"]


def test_lines_max_size(tcp_peer):
    srv = tcp_peer(serve_bytes(b"ok\n" + b"z" * 1000 + b"\n"))
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        it = c.lines(max_size=100)
        assert next(it) == b"ok\n"
        with pytest.raises(socketkit.LimitExceededError):
            next(it)


# --- request -------------------------------------------------------------------


def test_request_until_and_exact(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        assert c.request(b"hello\n") == b"hello\n"
        assert c.request(b"a;b;", until=b";") == b"a;"
        assert c.recv_until(b";") == b"b;"
        assert c.request(b"123456", exact=6) == b"123456"
        assert c.request(bytearray(b"0123456789"), exact=4) == b"0123"
        assert c.recv_exact(6) == b"456789"
        with pytest.raises(ValueError, match="until"):
            c.request(b"x", until=b"\n", exact=1)
        with pytest.raises(ValueError, match="exact"):
            c.request(b"x", exact=-1)
        with pytest.raises(ValueError, match="until"):
            c.request(b"x", until=b"")


def test_request_max_size(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        with pytest.raises(socketkit.LimitExceededError):
            c.request(b"x" * 200 + b"\n", max_size=50)


# --- bulk sends ----------------------------------------------------------------


def hash_and_reply(conn: socket.socket) -> None:
    digest, n = sha256_until_eof(conn)
    conn.sendall(f"{digest} {n}\n".encode())


def test_sendall_64_mib_arrives_intact(tcp_peer):
    data = os.urandom(64 * MiB)
    srv = tcp_peer(hash_and_reply)
    with socketkit.TcpClient(srv.address, timeout=30) as c:
        assert c.sendall(data) is None
        c.shutdown("write")
        reply = c.recv_line()
    assert reply == f"{hashlib.sha256(data).hexdigest()} {len(data)}\n".encode()


def test_sendall_accepts_memoryview_and_bytearray(tcp_peer):
    data = os.urandom(3 * MiB + 17)
    srv = tcp_peer(hash_and_reply)
    with socketkit.TcpClient(srv.address, timeout=30) as c:
        c.sendall(memoryview(data)[: MiB + 5])
        c.sendall(bytearray(data[MiB + 5 :]))
        c.shutdown(socket.SHUT_WR)
        reply = c.recv_line()
    assert reply == f"{hashlib.sha256(data).hexdigest()} {len(data)}\n".encode()


def test_sendfile_whole_file_and_file_position(tcp_peer):
    data = os.urandom(5 * MiB + 123)
    srv = tcp_peer(hash_and_reply)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        with socketkit.TcpClient(srv.address, timeout=30) as c:
            sent = c.sendfile(f)
            assert sent == len(data)
            assert f.tell() == len(data)
            c.shutdown("write")
            reply = c.recv_line()
    assert reply == f"{hashlib.sha256(data).hexdigest()} {len(data)}\n".encode()


def test_sendfile_offset_and_count(tcp_peer):
    data = os.urandom(MiB)
    srv = tcp_peer(hash_and_reply)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        with socketkit.TcpClient(srv.address, timeout=30) as c:
            assert c.sendfile(f, offset=1000, count=50_000) == 50_000
            assert f.tell() == 51_000
            # an fd works too (no position to move)
            assert c.sendfile(f.fileno(), offset=len(data) - 10) == 10
            c.shutdown("write")
            reply = c.recv_line()
    expected = data[1000:51_000] + data[-10:]
    assert reply == f"{hashlib.sha256(expected).hexdigest()} {len(expected)}\n".encode()


def test_sendfile_rejects_non_files(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        with pytest.raises(TypeError, match="file"):
            c.sendfile(b"not a file")
        with tempfile.TemporaryFile() as f, pytest.raises(ValueError, match="offset"):
            c.sendfile(f, offset=-1)


# --- shutdown / close ----------------------------------------------------------


def test_shutdown_write_gives_peer_eof_and_keeps_reading(tcp_peer):
    def handler(conn: socket.socket) -> None:
        got = recv_all(conn)  # returns only when the client shut down writing
        conn.sendall(b"got " + got)

    srv = tcp_peer(handler)
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        c.sendall(b"request")
        c.shutdown("write")
        assert c.recv_until(b"request") == b"got request"
        assert c.recv() == b""
        with pytest.raises(OSError):
            c.sendall(b"more")


def test_shutdown_read_and_both_and_bad_values(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        c.shutdown("read")
        assert c.recv() == b""
        c.shutdown("both")
        with pytest.raises(ValueError, match="how"):
            c.shutdown("sideways")
        with pytest.raises(ValueError, match="how"):
            c.shutdown(7)
        with pytest.raises(TypeError, match="how"):
            c.shutdown(None)


def test_close_closed_and_idempotent(echo_server):
    c = socketkit.TcpClient(echo_server.address, timeout=5)
    assert c.closed is False
    assert c.fileno() >= 0
    c.close()
    assert c.closed is True
    assert c.fileno() == -1
    c.close()  # idempotent
    assert c.closed is True


def test_close_releases_the_fd(echo_server):
    c = socketkit.TcpClient(echo_server.address, timeout=5)
    # A round trip first: the peer's thread has then accepted, so its
    # accept() cannot take the lowest free fd (this one) after close().
    c.sendall(b"x")
    assert c.recv_exact(1) == b"x"
    fd = c.fileno()
    os.fstat(fd)
    c.close()
    # The fd was closed (and nothing re-used it within this test).
    with pytest.raises(OSError):
        os.fstat(fd)


def test_context_manager_closes_and_propagates(echo_server):
    with pytest.raises(RuntimeError, match="inside"):
        with socketkit.TcpClient(echo_server.address, timeout=5) as c:
            assert isinstance(c, socketkit.TcpClient)
            raise RuntimeError("inside")
    assert c.closed


# --- timeouts, addresses, fileno, options, tcp_info ------------------------------


def test_settimeout_gettimeout(echo_server):
    with socketkit.TcpClient(echo_server.address) as c:
        assert c.gettimeout() is None
        c.settimeout(2.5)
        assert c.gettimeout() == 2.5
        c.settimeout(0)
        assert c.gettimeout() == 0.0
        c.settimeout(None)
        assert c.gettimeout() is None
    with socketkit.TcpClient(echo_server.address, timeout=3) as c:
        assert c.gettimeout() == 3.0


def test_recv_times_out_after_settimeout(echo_server):
    with socketkit.TcpClient(echo_server.address) as c:
        c.settimeout(0.2)
        t0 = time.monotonic()
        with pytest.raises(socketkit.TimeoutError) as ei:
            c.recv()
        assert time.monotonic() - t0 < 5
        assert ei.value.phase == "recv"
        # The connection is still usable after a timeout.
        assert c.request(b"still here\n") == b"still here\n"


def test_zero_timeout_is_nonblocking(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        c.settimeout(0)
        t0 = time.monotonic()
        with pytest.raises(socketkit.TimeoutError):
            c.recv()
        assert time.monotonic() - t0 < 2


def test_addresses(tcp_peer):
    seen: list[tuple] = []

    def handler(conn: socket.socket) -> None:
        seen.append((conn.getsockname(), conn.getpeername()))
        recv_all(conn)

    srv = tcp_peer(handler)
    with socketkit.TcpClient(srv.address, timeout=5) as c:
        c.sendall(b"x")  # make sure the handler ran
        for _ in range(500):
            if seen:
                break
            time.sleep(0.01)
        assert c.peer_address == srv.address
        assert seen == [(srv.address, c.local_address)]
        host, port = c.local_address
        assert host == "127.0.0.1" and isinstance(port, int) and port > 0


def test_source_address(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5, source_address=("127.0.0.1", 0)) as c:
        assert c.local_address[0] == "127.0.0.1"
        assert c.request(b"src\n") == b"src\n"


def test_fileno_is_the_real_socket(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        fd = c.fileno()
        s = socket.socket(fileno=os.dup(fd))
        with s:
            assert s.type == socket.SOCK_STREAM
            assert s.getpeername() == echo_server.address
    assert c.fileno() == -1


def test_options_read_back(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5, nodelay=True, keepalive=True) as c:
        o = c.options()
        assert o["nodelay"] is True
        assert o["keepalive"] is True
        for k in ("recv_buffer", "send_buffer", "ttl", "tos", "linger", "user_timeout"):
            assert k in o
        # The kernel really holds it: check through a stdlib view of the fd.
        s = socket.socket(fileno=os.dup(c.fileno()))
        with s:
            assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    # Nagle is off unless asked for (issue 16); nodelay=False turns it on.
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        assert c.options()["nodelay"] is True
    with socketkit.TcpClient(echo_server.address, timeout=5, nodelay=False) as c:
        assert c.options()["nodelay"] is False


@pytest.mark.skipif(platform.system() != "Linux", reason="TCP_INFO is Linux-only")
def test_tcp_info(echo_server):
    with socketkit.TcpClient(echo_server.address, timeout=5) as c:
        assert c.request(b"x" * 1000 + b"\n") == b"x" * 1000 + b"\n"
        info = c.tcp_info()
    for key in (
        "state",
        "rtt_ms",
        "rttvar_ms",
        "min_rtt_ms",
        "rto_ms",
        "retransmits",
        "total_retrans",
        "cwnd",
        "ssthresh",
        "mss",
        "bytes_acked",
        "bytes_received",
        "segs_out",
        "segs_in",
    ):
        assert key in info, key
    assert info["state"] == "ESTABLISHED"
    assert isinstance(info["rtt_ms"], float) and info["rtt_ms"] >= 0
    assert info["bytes_acked"] >= 1001
    assert info["bytes_received"] >= 1001
    assert info["cwnd"] > 0
    assert info["mss"] > 0
