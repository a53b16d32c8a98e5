"""socketkit.aio.AsyncUdpSocket under asyncio and uvloop."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from _aio_util import LOOPS, fds, runner, settles

import socketkit
from socketkit import aio

pytestmark = pytest.mark.parametrize("loop", LOOPS)


def test_sendto_recvfrom_and_connected(loop):
    async def main():
        async with await aio.AsyncUdpSocket.create(("127.0.0.1", 0)) as a:
            b = await aio.AsyncUdpSocket.create(connect=a.local_address, recv_buffer=1 << 16)
            assert b.peer_address == a.local_address
            assert b.options()["recv_buffer"] > 0
            assert await b.send(b"ping") == 4
            data, peer = await a.recvfrom()
            assert data == b"ping" and peer == b.local_address
            assert await a.sendto(b"pong", peer) == 4
            assert await b.recv() == b"pong"
            await b.aclose()
            assert b.closed
            assert "AsyncUdpSocket" in repr(a)
        assert a.closed

    runner(loop)(main())


def test_unbound_socket_is_made_by_first_sendto(loop):
    async def main():
        a = await aio.AsyncUdpSocket.create(("127.0.0.1", 0))
        u = await aio.AsyncUdpSocket.create()
        assert u.local_address is None and u.fileno() == -1
        with pytest.raises(OSError):
            await u.recv()
        await u.sendto(b"x", a.local_address)
        assert (await a.recvfrom())[0] == b"x"
        assert u.local_address is not None
        a.close()
        u.close()

    runner(loop)(main())


def test_send_many_recv_many(loop):
    async def main():
        a = await aio.AsyncUdpSocket.create(("127.0.0.1", 0))
        b = await aio.AsyncUdpSocket.create(("127.0.0.1", 0), connect=a.local_address)
        assert await b.send_many([b"1", b"2", (b"3", a.local_address)]) == 3
        got: list[bytes] = []
        while len(got) < 3:
            got += [d for d, _ in await a.recv_many(64)]
        assert got == [b"1", b"2", b"3"]
        a.close()
        b.close()

    runner(loop)(main())


def test_request_resends_on_silence(loop, udp_peer):
    seen: list[bytes] = []

    def handler(data: bytes, addr: tuple, sock: socket.socket) -> None:
        seen.append(data)
        if len(seen) >= 2:  # the first try goes unanswered
            sock.sendto(b"re:" + data, addr)

    peer = udp_peer(handler)

    async def main():
        u = await aio.AsyncUdpSocket.create(connect=peer.address)
        t = time.perf_counter()
        assert await u.request(b"q", timeout=0.2, retries=2) == b"re:q"
        assert time.perf_counter() - t >= 0.15
        with pytest.raises(socketkit.TimeoutError):
            await u.request(b"q", ("127.0.0.1", 9), timeout=0.05, retries=1)
        u.close()

    runner(loop)(main())
    assert len(seen) == 2


def test_timeout_and_cancel_leave_socket_usable(loop):
    async def main():
        a = await aio.AsyncUdpSocket.create(("127.0.0.1", 0), timeout=0.05)
        with pytest.raises(socketkit.TimeoutError):
            await a.recvfrom()
        a.settimeout(None)
        assert a.gettimeout() is None
        fd0 = fds()
        task = asyncio.ensure_future(a.recv())
        await asyncio.sleep(0.02)
        t = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.perf_counter() - t < 0.2
        b = await aio.AsyncUdpSocket.create(connect=a.local_address)
        await b.send(b"after")
        assert await a.recv() == b"after"
        b.close()
        a.close()
        assert await settles(fds, fd0 - 1) <= fd0 - 1

    runner(loop)(main())


def test_close_wakes_a_pending_recv(loop):
    async def main():
        a = await aio.AsyncUdpSocket.create(("127.0.0.1", 0))
        fd0 = fds()
        pending = asyncio.ensure_future(a.recv())
        await asyncio.sleep(0.02)
        a.close()
        with pytest.raises(OSError):
            await asyncio.wait_for(pending, 1.0)
        assert await settles(fds, fd0 - 1) <= fd0 - 1

    runner(loop)(main())
