"""The awaitable probes of socketkit.aio under asyncio and uvloop: same
results as the blocking ones, an event loop that keeps ticking while they
run, and cancellation that stops the work and leaves nothing behind."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from _aio_util import LOOPS, Heartbeat, fds, runner, settles, threads
from _probe_util import listeners
from peers import closed_tcp_port

import socketkit
from socketkit import aio

pytestmark = pytest.mark.parametrize("loop", LOOPS)

#: The longest the loop may go without a 10 ms heartbeat (issue 12).
MAX_GAP = 0.050


def test_results_match_the_blocking_probes(loop, tcp_peer, udp_peer):
    banner_peer = tcp_peer(lambda conn: conn.sendall(b"SSH-2.0-test\r\n"))
    echo = udp_peer(lambda data, addr, sock: sock.sendto(data, addr))
    closed = closed_tcp_port()

    async def main():
        with listeners(2) as ports:
            up = [f"127.0.0.1:{p}" for p in ports]
            r = await aio.check(up[0])
            assert isinstance(r, socketkit.CheckResult) and r.state == "open"
            assert (await aio.check("127.0.0.1", closed)).state == "closed"
            many = await aio.check_many([*up, f"127.0.0.1:{closed}"])
            assert isinstance(many, socketkit.Results)
            assert [x.state for x in many] == ["open", "open", "closed"]
            rep = await aio.scan("127.0.0.1", ports)
            assert isinstance(rep, socketkit.ScanReport)
            assert sorted(x.port for x in rep if x.state == "open") == sorted(ports)
            stats = await aio.tcping(up[0], count=3, interval=0.01)
            assert isinstance(stats, socketkit.PingStats) and stats.received == 3
            assert await aio.wait_for(up, timeout=2) < 2
            got = [x async for x in aio.check_iter([*up, f"127.0.0.1:{closed}"])]
            assert sorted(x.state for x in got) == ["closed", "open", "open"]
            got = [x async for x in aio.scan_iter("127.0.0.1", ports)]
            assert {x.port for x in got} == set(ports)
        assert await aio.banner(banner_peer.addr_str) == b"SSH-2.0-test\r\n"
        u = await aio.udp_probe(echo.address[0], echo.address[1], b"hi", timeout=0.5)
        assert u.state == "open"
        with pytest.raises(socketkit.TimeoutError):
            await aio.wait_for(f"127.0.0.1:{closed}", timeout=0.2, interval=0.05)
        with pytest.raises(ValueError):
            await aio.check("127.0.0.1", 70000)

    runner(loop)(main())


def test_loop_keeps_ticking_during_full_range_scan(loop):
    async def main():
        async with Heartbeat() as hb:
            rep = await aio.scan("127.0.0.1", "-", timeout=0.5)
        assert len(rep) == 65535
        return hb

    hb = runner(loop)(main())
    assert hb.ticks > 5 and hb.max_gap < MAX_GAP, hb.max_gap


def test_loop_keeps_ticking_during_10k_check_many(loop):
    async def main():
        targets = [("127.0.0.1", p) for p in range(20000, 30000)]
        async with Heartbeat() as hb:
            res = await aio.check_many(targets, timeout=0.5)
        assert len(res) == 10000
        return hb

    hb = runner(loop)(main())
    assert hb.max_gap < MAX_GAP, hb.max_gap


def test_loop_keeps_ticking_during_100_wait_for(loop):
    closed = closed_tcp_port()

    async def main():
        with listeners(1) as (port,):
            async with Heartbeat() as hb:
                ups = [aio.wait_for(f"127.0.0.1:{port}", timeout=2) for _ in range(50)]
                downs = [aio.wait_for(f"127.0.0.1:{closed}", timeout=0.3, interval=0.05) for _ in range(50)]
                got = await asyncio.gather(*ups, *downs, return_exceptions=True)
        assert all(isinstance(g, float) for g in got[:50])
        assert all(isinstance(g, socketkit.TimeoutError) for g in got[50:])
        return hb

    hb = runner(loop)(main())
    assert hb.max_gap < MAX_GAP, hb.max_gap


@pytest.mark.parametrize("what", ["wait_for", "scan", "scan_iter"])
def test_cancel_stops_the_probe(loop, what):
    closed = closed_tcp_port()

    async def consume():
        async for _ in aio.scan_iter("127.0.0.1", "-"):
            await asyncio.sleep(0)

    async def main():
        await aio.check(f"127.0.0.1:{closed}")  # runtime and bridge exist
        await settles(threads, 0, within=0.3)
        fd0, th0 = fds(), threads()
        if what == "wait_for":
            coro = aio.wait_for(f"127.0.0.1:{closed}", timeout=30, interval=0.05)
        elif what == "scan":
            coro = aio.scan("127.0.0.1", "-", concurrency=64)
        else:
            coro = consume()
        task = asyncio.ensure_future(coro)
        await asyncio.sleep(0.15)
        assert not task.done()
        t = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.perf_counter() - t < 0.2
        assert await settles(fds, fd0) <= fd0
        assert await settles(threads, th0) <= th0

    runner(loop)(main())


def test_asyncio_timeout_raises_timeout_error(loop):
    async def main():
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        c = await aio.AsyncTcpClient.connect(lst.getsockname())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await c.recv()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await aio.wait_for(f"127.0.0.1:{closed_tcp_port()}", timeout=10)
        c.close()
        lst.close()

    runner(loop)(main())


def test_every_argument_of_the_blocking_probe_works(loop):
    """Arguments the GIL-free forms do not take (service checks, wait_for
    states, TLS checks) run the blocking probe on the helper thread."""
    closed = closed_tcp_port()

    async def main():
        with socketkit.TcpServer.echo() as srv:
            target = f"127.0.0.1:{srv.address[1]}"
            steps = [socketkit.Send(b"hi\n"), socketkit.Expect(b"hi")]
            r = await aio.check(target, steps=steps, timeout=2)
            assert r.state == "open" and r.ok
            many = await aio.check_many([target], steps=steps, timeout=2)
            assert [x.state for x in many] == ["open"]
            assert await aio.wait_for(target, steps=steps, timeout=2) < 2
            assert await aio.banner(target, send=b"yo", timeout=0.5) == b"yo"
        assert await aio.wait_for(f"127.0.0.1:{closed}", state="closed", timeout=2) < 2
        t = await aio.tls_check(f"127.0.0.1:{closed}", timeout=1)
        assert isinstance(t, socketkit.TlsResult) and t.state == "closed"
        assert (await aio.check(f"127.0.0.1:{closed}", family="ipv4")).state == "closed"
        with pytest.raises(TypeError):
            await aio.check(f"127.0.0.1:{closed}", no_such_argument=1)  # type: ignore[call-arg]

    runner(loop)(main())
