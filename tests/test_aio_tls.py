"""socketkit.aio.AsyncTcpClient over TLS, against real servers: nginx
(tls_fixtures.py), a socketkit TLS TcpServer, postfix STARTTLS; verification
failures, cancellation mid-handshake (no fd left), start_tls, run_steps,
tls_info, and the awaitable tls_check."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest
from _aio_util import LOOPS, fds, runner, settles, threads

import socketkit
from socketkit import CertificateError, Expect, Send, StartTls, TlsConfig, TlsInfo, aio

pytestmark = pytest.mark.parametrize("loop", LOOPS)


def trusting(pki, **kw) -> TlsConfig:
    return TlsConfig(ca_file=pki.ca.cert, **kw)


async def smtp_reply(c: aio.AsyncTcpClient) -> list[bytes]:
    """One SMTP reply: lines up to the one whose code is followed by a space."""
    lines = []
    while True:
        line = await c.recv_line()
        assert line, lines
        lines.append(line)
        if line[3:4] == b" ":
            return lines


# ---------------------------------------------------------------- nginx


def test_nginx_round_trips(loop, nginx_tls, tls_pki):
    async def main():
        addr = ("localhost", nginx_tls.ports["valid"])
        async with await aio.AsyncTcpClient.connect(addr, tls=trusting(tls_pki), timeout=5) as c:
            info = c.tls_info()
            assert isinstance(info, TlsInfo)
            assert (info.verified, info.verify_error) == (True, None)
            assert info.version in ("TLSv1.2", "TLSv1.3") and info.cipher.startswith("TLS_")
            assert info.certificates[0].sha256 == tls_pki.valid.sha256
            assert "tls=TLSv1" in repr(c)
            await c.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            head = await c.recv_until(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            assert await c.recv_exact(length) == b"valid\n"
            status = await c.request(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n", until=b"\r\n")
            assert status == b"HTTP/1.1 200 OK\r\n"
            rest = [line async for line in c.lines()]
            assert rest[-1] == b"valid\n" and rest[-2] == b"\r\n"
            assert c.tcp_info()["state"] in ("ESTABLISHED", "CLOSE_WAIT")
            with pytest.raises(ValueError, match="already speaks TLS"):
                await c.start_tls()
            with pytest.raises(ValueError, match="refused on a TLS connection"):
                c.detach()
        assert c.closed

    runner(loop)(main())


@pytest.mark.parametrize("kind", ["valid_ec", "valid_ed25519", "chain"])
def test_nginx_certificate_kinds_verify(loop, nginx_tls, tls_pki, kind):
    async def main():
        addr = ("127.0.0.1", nginx_tls.ports[kind])
        cfg = trusting(tls_pki, server_hostname="localhost", alpn=["http/1.1"])
        async with await aio.AsyncTcpClient.connect(addr, tls=cfg, timeout=5, family="ipv4") as c:
            info = c.tls_info()
            assert info.verified, info
            assert info.certificates[0].sha256 == nginx_tls.extra["certs"][kind].sha256
            reply = await c.request(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n", until=b"\r\n")
            assert reply == b"HTTP/1.1 200 OK\r\n"

    runner(loop)(main())


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("expired", "certificate expired"), ("wrong_name", "hostname mismatch"), ("self_signed", "self-signed")],
)
def test_verification_failure_raises_certificate_error(loop, nginx_tls, tls_pki, kind, reason):
    async def main():
        before = fds()
        addr = ("localhost", nginx_tls.ports[kind])
        with pytest.raises(CertificateError) as ei:
            await aio.AsyncTcpClient.connect(addr, tls=trusting(tls_pki), timeout=5)
        e = ei.value
        assert (e.verify_error, e.verify_message, e.phase) == (reason, reason, "tls")
        assert reason in str(e)
        assert isinstance(e, ssl.SSLCertVerificationError)
        # verify=False completes, and tls_info() says why it did not verify.
        async with await aio.AsyncTcpClient.connect(
            addr, tls=trusting(tls_pki, verify=False), timeout=5
        ) as c:
            info = c.tls_info()
            assert (info.verified, info.verify_error) == (False, reason)
            assert info.certificates[0].sha256 == nginx_tls.extra["certs"][kind].sha256
        assert await settles(fds, before) <= before

    runner(loop)(main())


def test_unknown_issuer_with_tls_true(loop, nginx_tls):
    async def main():
        with pytest.raises(CertificateError) as ei:
            await aio.AsyncTcpClient.connect(("localhost", nginx_tls.ports["valid"]), tls=True, timeout=5)
        assert ei.value.verify_error == "unknown issuer"
        with pytest.raises(TypeError, match="tls must be"):
            await aio.AsyncTcpClient.connect(("localhost", nginx_tls.ports["valid"]), tls="yes")

    runner(loop)(main())


def test_every_tls_keyword(loop, nginx_tls, redis_tls, tls_pki):
    async def main():
        # A client certificate (cert_file/key_file): nginx names it.
        cfg = trusting(tls_pki, cert_file=tls_pki.client.cert, key_file=tls_pki.client.key)
        async with await aio.AsyncTcpClient.connect(
            ("localhost", nginx_tls.ports["client_auth"]), tls=cfg, timeout=5
        ) as c:
            await c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            body = b"".join([line async for line in c.lines()])
        assert b"client_auth CN=socketkit test client" in body
        # ALPN.
        cfg = trusting(tls_pki, alpn=["h2", "http/1.1"])
        async with await aio.AsyncTcpClient.connect(("localhost", nginx_tls.ports["valid"]), tls=cfg) as c:
            assert c.tls_info().alpn == "http/1.1"
        # Versions: redis speaks 1.2 and 1.3 (1.3 sends its session tickets
        # after the handshake: the loop's reader takes them in stride).
        for version, name in (("1.2", "TLSv1.2"), ("1.3", "TLSv1.3")):
            cfg = trusting(tls_pki, min_version=version, max_version=version)
            async with await aio.AsyncTcpClient.connect(
                ("localhost", redis_tls.port), tls=cfg, timeout=5
            ) as c:
                assert c.tls_info().version == name
                for _ in range(3):
                    assert await c.request(b"PING\r\n", until=b"\r\n") == b"+PONG\r\n"
        # This nginx build speaks only 1.2: a 1.3-only client fails, not on
        # the certificate.
        with pytest.raises(socketkit.TlsError) as ei:
            await aio.AsyncTcpClient.connect(
                ("localhost", nginx_tls.ports["valid"]), tls=trusting(tls_pki, min_version="1.3"), timeout=5
            )
        assert not isinstance(ei.value, CertificateError) and ei.value.phase == "tls"

    runner(loop)(main())


# ---------------------------------------------------------------- socketkit TLS server


def server_config(pki) -> TlsConfig:
    return TlsConfig(cert_file=str(pki.valid.chain), key_file=str(pki.valid.key))


def test_tls_echo_server_many_clients_and_big_transfers(loop, tls_pki):
    async def main(addr):
        cfg = trusting(tls_pki, server_hostname="localhost")

        async def one(i: int) -> None:
            async with await aio.AsyncTcpClient.connect(addr, tls=cfg, timeout=10) as c:
                for j in range(20):
                    msg = b"%d:%d\n" % (i, j)
                    assert await c.request(msg) == msg
                assert await c.send(b"x" * 1000) == 1000
                assert await c.recv_exact(1000) == b"x" * 1000

        await asyncio.gather(*(one(i) for i in range(50)))
        # 4 MiB both ways: the send waits on the runtime (socket full) while
        # the loop reads the echo back.
        big = bytes(range(256)) * (4 * 1024 * 4)
        async with await aio.AsyncTcpClient.connect(addr, tls=cfg, timeout=20) as c:
            send = asyncio.ensure_future(c.sendall(big))
            got = await c.recv_exact(len(big))
            await send
            assert got == big
            c.shutdown("write")
            assert await c.recv(10) == b""

    with socketkit.TcpServer.echo(tls=server_config(tls_pki)) as srv:
        runner(loop)(main(srv.address))
        assert srv.stats["tls_failures"] == 0


@pytest.mark.parametrize("size", [3_000, 30_000, 300_000])
def test_run_steps_over_tls_hands_every_byte_back(loop, tls_pki, size):
    """Bytes a dialogue read past its match, and those still in flight,
    reach the client's next reads (plaintext left inside the TLS session
    itself: src/aio/tls_tests.rs)."""

    async def main(addr):
        cfg = trusting(tls_pki, server_hostname="localhost")
        async with await aio.AsyncTcpClient.connect(addr, tls=cfg, timeout=10) as c:
            tail = bytes(range(256)) * (size // 256)
            assert await c.run_steps([Send(b"hello\n" + tail), Expect(b"hello\n")]) is None
            async with asyncio.timeout(5):
                assert await c.recv_exact(len(tail)) == tail

    with socketkit.TcpServer.echo(tls=server_config(tls_pki)) as srv:
        runner(loop)(main(srv.address))


# ---------------------------------------------------------------- STARTTLS, run_steps


def test_start_tls_with_postfix_by_hand(loop, smtp_server, tls_pki):
    async def main():
        async with await aio.AsyncTcpClient.connect(
            ("localhost", smtp_server.ports["smtp"]), timeout=10
        ) as c:
            assert (await smtp_reply(c))[0].startswith(b"220 ")
            await c.sendall(b"EHLO client.test\r\n")
            assert b"250-STARTTLS\r\n" in await smtp_reply(c)
            assert (await c.request(b"STARTTLS\r\n", until=b"\r\n")).startswith(b"220 ")
            assert c.tls_info() is None
            with pytest.raises(ValueError, match="start_tls"):
                await c.start_tls(False)
            await c.start_tls(trusting(tls_pki))
            info = c.tls_info()
            assert info.verified and info.certificates[0].sha256 == tls_pki.valid.sha256
            await c.sendall(b"EHLO client.test\r\n")
            reply = await smtp_reply(c)
            assert reply[0].startswith(b"250-") and b"250-STARTTLS\r\n" not in reply
            assert (await c.request(b"QUIT\r\n", until=b"\r\n")).startswith(b"221 ")

    runner(loop)(main())


def test_start_tls_with_the_smtp_preset(loop, smtp_server, tls_pki):
    async def main():
        addr = ("localhost", smtp_server.ports["smtp"])
        async with await aio.AsyncTcpClient.connect(addr, timeout=10) as c:
            await c.start_tls(trusting(tls_pki), starttls="smtp")
            assert c.tls_info().verified
            reply = await c.request(b"EHLO client.test\r\n", until=b"\r\n")
            assert reply.startswith(b"250-")
        # The test CA is not a system root: the preset's handshake fails.
        async with await aio.AsyncTcpClient.connect(addr, timeout=10) as c:
            with pytest.raises(CertificateError) as ei:
                await c.start_tls(starttls="smtp")
            assert ei.value.verify_error == "unknown issuer"

    runner(loop)(main())


def test_run_steps_with_starttls_then_reads(loop, smtp_server, tls_pki):
    async def main():
        addr = ("localhost", smtp_server.ports["smtp"])
        async with await aio.AsyncTcpClient.connect(addr, timeout=10) as c:
            steps = [
                StartTls("smtp"),
                Send(b"EHLO socketkit.invalid\r\n"),
                Expect(rb"250-(\w+)", regex=True),
            ]
            assert await c.run_steps(steps, tls=trusting(tls_pki)) is not None
            assert c.tls_info().verified
            # The rest of the EHLO reply stayed buffered for the next read.
            rest = await smtp_reply(c)
            assert rest[-1].startswith(b"250 ")
            with pytest.raises(socketkit.DialogueError) as ei:
                await c.run_steps([Send(b"NOOP\r\n"), Expect(b"999 ", timeout=0.5)])
            assert ei.value.failed_step == 1
            assert (await c.request(b"QUIT\r\n", until=b"\r\n")).startswith(b"221 ")

    runner(loop)(main())


def test_run_steps_over_tls_from_the_first_byte(loop, nginx_tls, tls_pki):
    async def main():
        addr = ("localhost", nginx_tls.ports["valid"])
        async with await aio.AsyncTcpClient.connect(addr, tls=trusting(tls_pki), timeout=10) as c:
            steps = [
                Send(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"),
                Expect(rb"HTTP/1.1 (\d+)", regex=True),
            ]
            assert await c.run_steps(steps) == (b"200",)
            body = b"".join([line async for line in c.lines()])
            assert body.endswith(b"\r\n\r\nvalid\n")

    runner(loop)(main())


# ---------------------------------------------------------------- cancellation, timeouts


def test_cancel_mid_handshake_leaves_no_fd(loop, stalled_server):
    async def main():
        before_threads = threads()
        warm = await aio.AsyncTcpClient.connect(stalled_server.address)
        while stalled_server.accepted == 0:
            await asyncio.sleep(0.01)
        # The peer's accept loop has its selector now; less the warm-up
        # client and its accepted end.
        before_fds = fds() - 2
        warm.close()
        stalled_server.accepted = 0
        for tls in (True, TlsConfig(verify=False)):
            task = asyncio.ensure_future(aio.AsyncTcpClient.connect(stalled_server.address, tls=tls))
            while stalled_server.accepted == 0:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # into the handshake's wait
            t0 = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - t0 < 0.2
            stalled_server.accepted = 0
        # start_tls on a plain connection: cancelled, the client is closed.
        c = await aio.AsyncTcpClient.connect(stalled_server.address)

        async def upgrade(**kw):
            await c.start_tls(**kw)

        task = asyncio.create_task(upgrade())
        await asyncio.sleep(0.1)
        with pytest.raises(ValueError, match="in progress"):
            await c.recv(10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert c.closed
        # The preset's exchange runs on a helper thread: cancelled, it ends.
        c = await aio.AsyncTcpClient.connect(stalled_server.address)
        task = asyncio.create_task(upgrade(starttls="smtp"))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 0.2
        assert c.closed
        assert await settles(fds, before_fds) <= before_fds
        assert await settles(threads, before_threads) <= before_threads

    runner(loop)(main())


def test_handshake_timeout(loop, stalled_server):
    async def main():
        t0 = time.monotonic()
        with pytest.raises(socketkit.TimeoutError) as ei:
            await aio.AsyncTcpClient.connect(stalled_server.address, tls=True, timeout=0.3)
        assert time.monotonic() - t0 >= 0.29
        assert ei.value.phase == "tls"
        async with await aio.AsyncTcpClient.connect(stalled_server.address, timeout=0.2) as c:
            with pytest.raises(socketkit.TimeoutError):
                await c.start_tls()
        # asyncio.timeout() around the connect works as well.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await aio.AsyncTcpClient.connect(stalled_server.address, tls=True)

    runner(loop)(main())


# ---------------------------------------------------------------- tls_check


def test_tls_check_awaitable(loop, nginx_tls, tls_pki, stalled_server):
    async def main():
        r = await aio.tls_check(("localhost", nginx_tls.ports["valid"]), tls=trusting(tls_pki))
        assert isinstance(r, socketkit.TlsResult)
        assert (r.state, r.verified, r.cert.sha256) == ("valid", True, tls_pki.valid.sha256)
        seen = []
        targets = [("localhost", nginx_tls.ports[k]) for k in ("valid", "expired", "self_signed")]
        many = await aio.tls_check_many(
            targets, tls=trusting(tls_pki), progress=lambda d, t: seen.append((d, t))
        )
        assert [x.ok for x in many] == [True, False, False]
        assert seen[-1] == (3, 3)
        # Cancelled against a server that never answers: the work stops.
        before = threads()
        task = asyncio.ensure_future(aio.tls_check(stalled_server.address, timeout=30))
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 0.2
        assert await settles(threads, before) <= before

    runner(loop)(main())
