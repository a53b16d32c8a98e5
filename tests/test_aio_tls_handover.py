"""AsyncTcpClient's other TcpClient methods, on plain connections to a
socketkit echo server: tcp_info, from_socket / detach, run_steps (bytes
past the last match stay buffered), and the guard against calls made while
a lent exchange runs."""

from __future__ import annotations

import asyncio
import socket

import pytest
from _aio_util import LOOPS, fds, runner, settles

import socketkit
from socketkit import Expect, Send, aio

pytestmark = pytest.mark.parametrize("loop", LOOPS)


@pytest.fixture
def echo():
    with socketkit.TcpServer.echo() as srv:
        yield srv.address


def test_tcp_info_has_the_blocking_keys(loop, echo):
    async def main():
        async with await aio.AsyncTcpClient.connect(echo) as c:
            assert await c.request(b"hi\n") == b"hi\n"
            info = c.tcp_info()
        with socketkit.TcpClient(echo) as b:
            keys = set(b.tcp_info())
        assert set(info) == keys
        assert info["state"] == "ESTABLISHED"
        assert info["bytes_received"] >= 3 and info["rtt_ms"] >= 0
        with pytest.raises(OSError):
            c.tcp_info()

    runner(loop)(main())


def test_from_socket_and_detach(loop, echo):
    async def main():
        before = fds()
        s = socket.create_connection(echo)
        s.settimeout(5)
        c = aio.AsyncTcpClient.from_socket(s)
        assert s.fileno() == -1  # detached: the client owns the fd now
        assert c.gettimeout() == 5 and c.peer_address == echo
        assert await c.request(b"one\n") == b"one\n"
        # Bytes still buffered: detach would lose them. (One 10-byte write
        # on loopback is one segment: the reader gets it in one read.)
        await c.sendall(b"two\nthree\n")
        assert await c.recv_exact(1) == b"t"
        with pytest.raises(ValueError, match="buffered"):
            c.detach()
        assert await c.recv_exact(9) == b"wo\nthree\n"
        back = c.detach()
        assert c.closed and c.fileno() == -1
        assert back.gettimeout() == 5
        back.sendall(b"blocking again\n")
        assert back.recv(100) == b"blocking again\n"
        back.close()
        with pytest.raises(TypeError, match=r"socket\.socket"):
            aio.AsyncTcpClient.from_socket("not a socket")
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(ValueError, match="SOCK_STREAM"):
            aio.AsyncTcpClient.from_socket(udp)
        udp.close()
        assert await settles(fds, before) <= before

    runner(loop)(main())
    with socket.create_connection(echo) as s, pytest.raises(RuntimeError):
        aio.AsyncTcpClient.from_socket(s)  # outside a running loop


def test_run_steps_keeps_the_rest_buffered(loop, echo):
    async def main():
        async with await aio.AsyncTcpClient.connect(echo, timeout=5) as c:
            steps = [Send(b"hello 42\nnext\n"), Expect(rb"hello (\d+)\n", regex=True)]
            assert await c.run_steps(steps) == (b"42",)
            assert await c.recv_line() == b"next\n"
            with pytest.raises(socketkit.DialogueError) as ei:
                await c.run_steps([Send(b"x\n"), Expect(b"never", timeout=0.2)])
            assert ei.value.failed_step == 1 and ei.value.received == b"x\n"
            # The client is usable after a failed step, as TcpClient is.
            assert await c.request(b"still\n") == b"still\n"

    runner(loop)(main())


def test_calls_during_a_lent_exchange_are_refused(loop, tcp_peer):
    def handler(conn: socket.socket) -> None:
        conn.recv(100)  # the Send step, then silence until the test ends
        conn.recv(100)

    peer = tcp_peer(handler)

    async def main():
        c = await aio.AsyncTcpClient.connect(peer.address, timeout=5)
        task = asyncio.ensure_future(c.run_steps([Send(b"hi\n"), Expect(b"never")]))
        await asyncio.sleep(0.1)
        calls = (
            lambda: c.recv(1),
            lambda: c.sendall(b"x"),
            lambda: c.start_tls(),
            lambda: c.run_steps([Send(b"y")]),
        )
        for call in calls:
            with pytest.raises(ValueError, match="in progress"):
                await call()
        with pytest.raises(ValueError, match="in progress"):
            c.detach()
        # close() wakes the helper thread at once.
        c.close()
        with pytest.raises(OSError):
            await task

    runner(loop)(main())
