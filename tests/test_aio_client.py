"""socketkit.aio.AsyncTcpClient under asyncio and uvloop."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest
from _aio_util import LOOPS, fds, runner, settles, threads
from _probe_util import full_backlog
from peers import closed_tcp_port

import socketkit
from socketkit import aio

pytestmark = pytest.mark.parametrize("loop", LOOPS)


@pytest.fixture
def echo():
    with socketkit.TcpServer.echo() as srv:
        yield srv.address


def test_request_and_framing(loop, echo):
    async def main():
        async with await aio.AsyncTcpClient.connect(echo, nodelay=True) as c:
            assert c.options()["nodelay"] is True
            assert c.peer_address == echo
            assert c.local_address[0] == "127.0.0.1"
            assert c.fileno() > 0 and not c.closed
            assert await c.request(b"hello\n") == b"hello\n"
            assert await c.request(b"abcd", exact=4) == b"abcd"
            assert await c.request(b"x;y;", until=b";") == b"x;"
            assert await c.recv_until(b";") == b"y;"
            await c.sendall(b"one\ntwo\nrest")
            assert await c.recv_line() == b"one\n"
            assert await c.recv_exact(2) == b"tw"
            got = b""
            while len(got) < 6:
                got += await c.recv(3)
            assert got == b"o\nrest"
            buf = bytearray(8)
            assert await c.send(b"1234") == 4
            n = 0
            while n < 4:
                n += await c.recv_into(memoryview(buf)[n:], 4 - n)
            assert bytes(buf[:4]) == b"1234"
            assert "AsyncTcpClient" in repr(c)
        assert c.closed and c.fileno() == -1

    runner(loop)(main())


def test_lines_until_eof(loop, tcp_peer):
    def handler(conn: socket.socket) -> None:
        conn.sendall(b"a\nb\nc")

    peer = tcp_peer(handler)

    async def main():
        c = await aio.AsyncTcpClient.connect(peer.address)
        lines = [line async for line in c.lines()]
        await c.aclose()
        return lines

    assert runner(loop)(main()) == [b"a\n", b"b\n", b"c"]


def test_errors_are_the_blocking_ones(loop, tcp_peer):
    peer = tcp_peer(lambda conn: conn.sendall(b"abc"))
    port = closed_tcp_port()

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await aio.AsyncTcpClient.connect(("127.0.0.1", port))
        with pytest.raises(TypeError):
            await aio.AsyncTcpClient.connect(("127.0.0.1", port), no_such_option=1)
        # TLS is built (tests/test_aio_tls.py): a refused connect under
        # tls= is the same ConnectionRefusedError as TcpClient's.
        with pytest.raises(ConnectionRefusedError):
            await aio.AsyncTcpClient.connect(("127.0.0.1", port), tls=True)
        c = await aio.AsyncTcpClient.connect(peer.address)
        with pytest.raises(socketkit.ConnectionClosedError) as e:
            await c.recv_exact(5)
        assert e.value.partial == b"abc"
        c.close()
        with pytest.raises(OSError):
            await c.recv()

    runner(loop)(main())


def test_timeouts(loop, tcp_peer):
    release = []

    def handler(conn: socket.socket) -> None:
        conn.sendall(b"abc")
        while not release:
            time.sleep(0.01)
        conn.sendall(b"\n")

    peer = tcp_peer(handler)

    async def main():
        c = await aio.AsyncTcpClient.connect(peer.address, timeout=0.1)
        assert c.gettimeout() == 0.1
        with pytest.raises(socketkit.TimeoutError):
            await c.recv_line()
        c.settimeout(None)
        # A cancelled read keeps what it had read: "abc" is still buffered.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await c.recv_line()
        release.append(1)
        assert await c.recv_line() == b"abc\n"
        c.close()

    runner(loop)(main())


def test_one_object_one_loop(loop, echo):
    async def make():
        return await aio.AsyncTcpClient.connect(echo)

    made = runner(loop)(make())

    async def elsewhere():
        with pytest.raises(RuntimeError, match="another event loop"):
            await made.request(b"x\n")

    try:
        runner(loop)(elsewhere())
    finally:
        made.close()


def test_thousand_concurrent_round_trips(loop, echo):
    async def main():
        clients = await asyncio.gather(*[aio.AsyncTcpClient.connect(echo) for _ in range(1000)])
        try:

            async def one(i: int, c: aio.AsyncTcpClient) -> bytes:
                msg = f"{i:063d}\n".encode()
                for _ in range(3):
                    assert await c.request(msg, exact=64) == msg
                return msg

            got = await asyncio.gather(*[one(i, c) for i, c in enumerate(clients)])
            assert len(set(got)) == 1000
        finally:
            for c in clients:
                c.close()

    runner(loop)(main())


def test_cancelled_connect_and_recv_leave_nothing(loop, tcp_peer):
    silent = tcp_peer(lambda conn: conn.recv(1))

    async def main():
        await aio.check("127.0.0.1:1")  # the runtime and helper threads exist
        fd0, th0 = fds(), threads()
        with full_backlog() as port:
            fd1 = fds()
            task = asyncio.ensure_future(aio.AsyncTcpClient.connect(("127.0.0.1", port), timeout=30))
            await asyncio.sleep(0.1)
            t = time.perf_counter()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.perf_counter() - t < 0.2
            assert await settles(fds, fd1) <= fd1
        c = await aio.AsyncTcpClient.connect(silent.address)
        task = asyncio.ensure_future(c.recv())
        await asyncio.sleep(0.05)
        t = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.perf_counter() - t < 0.2
        assert not c.closed  # a cancelled read leaves the client usable
        await c.sendall(b"x")
        c.close()
        assert await settles(fds, fd0) <= fd0
        assert await settles(threads, th0) <= th0

    runner(loop)(main())


def test_close_wakes_a_pending_recv(loop, tcp_peer):
    silent = tcp_peer(lambda conn: conn.recv(1))

    async def main():
        c = await aio.AsyncTcpClient.connect(silent.address)
        pending = asyncio.ensure_future(c.recv())
        await asyncio.sleep(0.02)
        c.close()
        with pytest.raises(OSError):
            await asyncio.wait_for(pending, 1.0)
        assert c.closed

    runner(loop)(main())


def test_a_forked_child_gets_its_own_runtime(loop, echo):
    async def once() -> bytes:
        c = await aio.AsyncTcpClient.connect(echo)
        try:
            return await c.request(b"ping\n")
        finally:
            c.close()

    assert runner(loop)(once()) == b"ping\n"  # the parent's runtime exists
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its status
        try:
            ok = runner(loop)(asyncio.wait_for(once(), 5)) == b"ping\n"
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert runner(loop)(once()) == b"ping\n"


def test_names_race_both_families_and_source_address(loop, echo):
    port = echo[1]

    async def main():
        # "localhost" may resolve to ::1 first: the v4 listener still wins.
        c = await aio.AsyncTcpClient.connect(f"localhost:{port}", timeout=5)
        assert c.peer_address == ("127.0.0.1", port)
        assert await c.request(b"n\n") == b"n\n"
        c.close()
        c = await aio.AsyncTcpClient.connect(echo, source_address=("127.0.0.1", 0))
        assert c.local_address[0] == "127.0.0.1"
        c.close()
        with pytest.raises(ValueError, match="source_address"):
            await aio.AsyncTcpClient.connect(echo, source_address=("::1", 0))

    runner(loop)(main())


def test_big_transfers_both_ways(loop, echo):
    """A write the kernel cannot take at once waits on the runtime while
    the loop's thread reads the echo back."""
    payload = bytes(range(256)) * (16 * 1024)  # 4 MiB

    async def main():
        c = await aio.AsyncTcpClient.connect(echo)
        sent, got = await asyncio.gather(c.sendall(payload), c.recv_exact(len(payload)))
        assert sent is None and got == payload
        got = await c.request(payload, exact=len(payload))
        assert got == payload
        c.close()

    runner(loop)(main())
