"""The fast paths of socketkit.aio.AsyncTcpClient's request/response path:
the loop check that skips asyncio.get_running_loop(), replies answered
from bytes buffered before the call, and the read buffer that starts
small and grows."""

from __future__ import annotations

import asyncio
import threading

import pytest
from _aio_util import LOOPS, runner

import socketkit
from socketkit import aio

pytestmark = pytest.mark.parametrize("loop", LOOPS)


@pytest.fixture
def echo():
    with socketkit.TcpServer.echo() as srv:
        yield srv.address


def test_calls_from_another_thread_are_refused_while_the_loop_runs(loop, echo):
    """The owner's loop is running (its ``_thread_id`` is set), but not on
    the calling thread: no loop there, or another loop, is refused."""

    async def main():
        async with await aio.AsyncTcpClient.connect(echo) as c:
            errors: list[BaseException] = []

            def bare() -> None:
                try:
                    c.request(b"bare\n")
                except BaseException as e:
                    errors.append(e)

            async def other_loop() -> None:
                c.recv_line()

            def with_loop() -> None:
                try:
                    asyncio.run(other_loop())
                except BaseException as e:
                    errors.append(e)

            for fn in (bare, with_loop):
                t = threading.Thread(target=fn)
                t.start()
                await asyncio.get_running_loop().run_in_executor(None, t.join)
            assert [type(e) for e in errors] == [RuntimeError, RuntimeError]
            assert "another event loop" in str(errors[1])
            # Nothing was sent or queued by the refused calls.
            assert await c.request(b"mine\n") == b"mine\n"

    runner(loop)(main())


def test_reply_buffered_before_the_call_is_returned_done(loop, echo):
    """One segment echoed back carries two lines: the read of the first
    buffers the second, and the next read is answered at once (a future
    already done) with it, then the reads wait again, in order."""

    async def main():
        async with await aio.AsyncTcpClient.connect(echo) as c:
            assert await c.request(b"one\ntwo\n") == b"one\n"
            f = c.recv_line()
            assert f.done() and f.result() == b"two\n"
            f = c.request(b"three\nfour\n")
            assert not f.done()
            assert await f == b"three\n"
            f = c.request(b"five\n")
            assert f.done() and f.result() == b"four\n"
            assert await c.recv_line() == b"five\n"

    runner(loop)(main())


def test_a_cancelled_read_keeps_its_bytes_for_the_next(loop, echo):
    async def main():
        async with await aio.AsyncTcpClient.connect(echo) as c:
            waiting = asyncio.ensure_future(c.recv_exact(10))
            await c.sendall(b"12345")
            await asyncio.sleep(0.05)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert await c.request(b"67890", exact=10) == b"1234567890"

    runner(loop)(main())


def test_small_replies_then_one_bigger_than_the_first_buffer(loop, echo):
    """The loop's read buffer starts at 4 KiB and doubles as one read
    fills it: a 1 MiB reply after small ones arrives whole and in order."""
    big = bytes(range(256)) * 4096

    async def main():
        async with await aio.AsyncTcpClient.connect(echo) as c:
            for i in range(3):
                assert await c.request(b"%d\n" % i) == b"%d\n" % i
            assert await c.request(big, exact=len(big)) == big
            assert await c.request(b"after\n") == b"after\n"

    runner(loop)(main())


# request()'s write goes to the outbox (sent on the aio runtime, off the
# loop's thread); these drive it the way a user would.


def test_writes_after_a_request_keep_their_order(loop, echo):
    async def main():
        async with await aio.AsyncTcpClient.connect(echo) as c:
            first = c.request(b"a\n")
            await c.sendall(b"b\n")
            assert await c.send(b"c\n") == 2
            assert await first == b"a\n"
            assert await c.recv_line() == b"b\n"
            assert await c.recv_line() == b"c\n"
            # Pipelined: each request's write queues behind the one before.
            futs = [c.request(b"%d\n" % i) for i in range(200)]
            assert await asyncio.gather(*futs) == [b"%d\n" % i for i in range(200)]

    runner(loop)(main())


def test_a_failed_write_fails_its_reply(loop, tcp_peer):
    """The write fails on the runtime (EPIPE: the write side is shut down;
    the peer stays open and silent, so no EOF races it): the reply waiting
    for it fails with the send's error instead of waiting forever."""
    done = threading.Event()
    silent = tcp_peer(lambda conn: done.wait(10))

    async def main():
        async with await aio.AsyncTcpClient.connect(silent.address) as c:
            c.shutdown("write")
            with pytest.raises(BrokenPipeError):
                await asyncio.wait_for(c.request(b"after\n"), 5)
            assert not c.closed

    try:
        runner(loop)(main())
    finally:
        done.set()


def test_a_failed_write_with_the_reply_already_buffered_raises_at_the_call(loop, echo):
    """A reply that is already buffered would be answered at once: such a
    request sends inline, so its failed write raises from the call itself
    and the buffered bytes stay for the next read."""

    async def main():
        async with await aio.AsyncTcpClient.connect(echo) as c:
            assert await c.request(b"a\nb\n") == b"a\n"
            c.shutdown("write")
            with pytest.raises(BrokenPipeError):
                c.request(b"c\n")
            assert await c.recv_line() == b"b\n"

    runner(loop)(main())


def test_a_cancelled_request_still_sends_and_its_reply_stays_buffered(loop, echo):
    async def main():
        async with await aio.AsyncTcpClient.connect(echo) as c:
            f = c.request(b"one\n")
            f.cancel()
            with pytest.raises(asyncio.CancelledError):
                await f
            assert not c.closed
            assert await c.recv_line() == b"one\n"
            assert await c.request(b"two\n") == b"two\n"

    runner(loop)(main())


def test_close_with_a_request_in_flight_fails_it(loop, echo):
    async def main():
        c = await aio.AsyncTcpClient.connect(echo)
        f = c.request(b"x\n")
        c.close()
        with pytest.raises(OSError):
            await asyncio.wait_for(f, 5)
        assert c.closed

    runner(loop)(main())
