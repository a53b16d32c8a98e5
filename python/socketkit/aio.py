"""socketkit for asyncio (and uvloop): the same clients and probes as
awaitables, with real cancellation.

    from socketkit import aio

    async with await aio.AsyncTcpClient.connect(("example.org", 80)) as c:
        await c.sendall(b"HEAD / HTTP/1.0\\r\\n\\r\\n")
        print(await c.recv_line())
    report = await aio.scan("127.0.0.1", "1-1024")

How it runs (measured on a 2-core VM, ``benches/aio.py``):

- ``AsyncTcpClient`` and ``AsyncUdpSocket`` are driven by socketkit's own
  tokio runtime: no Python thread per call, and the same read buffer and
  framing as ``TcpClient`` (``recv_line`` then ``recv`` loses nothing).
  Each awaitable is a future of the running loop; finished operations are
  handed to the loop in batches through one eventfd per thread that the
  loop watches, and their results are set on the loop's own thread. That
  bridge did 184,000 awaits/s against 13,800/s for pyo3-async-runtimes'
  ``future_into_py`` (which takes the GIL on a pool thread and calls
  ``call_soon_threadsafe`` once per result), so the bridge is socketkit's
  own. A write the kernel takes at once, or a read the buffer already
  holds, completes without leaving the loop's thread.
- The probes run the blocking probe of the core (same arguments, results
  and errors) on one helper thread per call, which ends with the call.
  ``check``, ``check_many``, ``scan``, ``wait_for``, ``banner`` and
  ``udp_probe`` read their arguments and build their results on the
  loop's thread (a big result a chunk per loop turn), so their helper
  thread never takes the GIL: with the GIL handed between threads
  instead, 100 concurrent ``wait_for`` or a full scan's 65,535 results
  left the loop waiting 60-100 ms on a loaded 2-core machine; this way a
  heartbeat every 10 ms saw no gap over ~20 ms during a full-range scan.
  ``tcping`` and the ``check_iter`` / ``scan_iter`` async iterators call
  the blocking function itself on the helper thread, which takes the GIL
  only to read arguments and build results, in the interpreter's 5 ms
  turns. ``await scan(...)`` is the blocking scan's engine. A
  ``progress`` callable is called from the helper thread.

Cancellation (``task.cancel()``, ``asyncio.timeout()``, ``wait_for``)
stops the work in Rust: the client's tokio task is dropped, which closes
the sockets of a connect in flight at once; a probe's helper thread sees
its cancel flag within one 100 ms slice, closes its sockets and ends.
A cancelled *read* leaves the client usable: bytes it had already received
stay buffered for the next read. A cancelled ``send``/``sendall``/
``request`` may have sent part of its data (the client stays open, but
that exchange is cut short: close it unless the protocol can resync).

The methods of ``AsyncTcpClient`` and ``AsyncUdpSocket`` return asyncio
futures, not coroutines: ``await`` them, pass them to ``asyncio.gather``,
``asyncio.wait_for`` or ``asyncio.ensure_future``; ``create_task`` wants
a coroutine (wrap the call in an ``async def``). The probes are coroutines.

Loops: an aio object belongs to the event loop it was created in; using it
from another loop raises ``RuntimeError``. Works under the default asyncio
loop and under uvloop.

Threads and fork: the runtime (one worker per two CPUs, at least one;
``SOCKETKIT_AIO_THREADS`` overrides) is built on first use and lives for
the process. A forked child builds a fresh one on its first aio call;
objects made before the fork belong to the parent. TLS for
``AsyncTcpClient`` (``tls=``) is not built yet and raises
``NotImplementedError``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from socketkit import _core, probes
from socketkit._core import AsyncLineIterator, AsyncTcpClient, AsyncUdpSocket
from socketkit._progress import make_progress
from socketkit.probes import Ports, Progress, Target
from socketkit.results import CheckResult, PingStats, Results, ScanReport

__all__ = [
    "AsyncLineIterator",
    "AsyncTcpClient",
    "AsyncUdpSocket",
    "banner",
    "check",
    "check_iter",
    "check_many",
    "scan",
    "scan_iter",
    "tcping",
    "udp_probe",
    "wait_for",
]

_D = _core.DEFAULTS
_call = _core._aio_call
#: Result objects built per loop turn: ~1-2 ms of the loop's time each.
_CHUNK = 1024


async def _collect(raw: _core.AioResults) -> list[CheckResult]:
    """The results of a finished run, built a chunk per loop turn so a
    65,535-port scan never holds the loop for long."""
    out: list[CheckResult] = []
    while chunk := raw.take(_CHUNK):
        out.extend(map(CheckResult._make, chunk))
        await asyncio.sleep(0)
    return out


async def check(
    target: Target, port: int | None = None, *, timeout: float = _D["check_timeout"], proto: str = "tcp"
) -> CheckResult:
    """Awaitable :func:`socketkit.check`."""
    if probes._proto(proto) == "udp":
        t = None if timeout is None else timeout / 3
        return await udp_probe(target, port, timeout=t, retries=2)  # type: ignore[arg-type]
    (result,) = await _collect(await _core._aio_check(target, port, timeout=timeout))
    return result


async def check_many(
    targets: Iterable[Target],
    *,
    timeout: float = _D["check_timeout"],
    concurrency: int = _D["check_concurrency"],
    rate: float | None = None,
    progress: Progress = None,
) -> Results:
    """Awaitable :func:`socketkit.check_many`."""
    bar = make_progress(progress, "check")
    try:
        raw = await _core._aio_check_many(
            targets, timeout=timeout, concurrency=concurrency, rate=rate, progress=bar.callback
        )
    finally:
        bar.close()
    return Results(await _collect(raw))


async def scan(
    hosts: str | Iterable[str],
    ports: Ports = _D["scan_ports"],
    *,
    timeout: float = _D["scan_timeout"],
    concurrency: int = _D["scan_concurrency"],
    rate: float | None = None,
    progress: Progress = None,
) -> ScanReport:
    """Awaitable :func:`socketkit.scan`."""
    bar = make_progress(progress, "scan")
    start = time.perf_counter()
    try:
        raw = await _core._aio_scan(
            hosts, ports, timeout=timeout, concurrency=concurrency, rate=rate, progress=bar.callback
        )
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    results = await _collect(raw)
    nhosts = len({r.host for r in results}) or 1
    return ScanReport(results, ports=len(results) // nhosts, elapsed=elapsed)


async def tcping(
    target: Target,
    port: int | None = None,
    *,
    count: int = _D["ping_count"],
    interval: float = _D["ping_interval"],
    timeout: float = _D["ping_timeout"],
) -> PingStats:
    """Awaitable :func:`socketkit.tcping`."""
    result: PingStats = await _call(
        probes.tcping, target, port, count=count, interval=interval, timeout=timeout
    )
    return result


async def wait_for(
    targets: Target | Iterable[Target],
    port: int | None = None,
    *,
    timeout: float = _D["wait_timeout"],
    interval: float = _D["wait_interval"],
    send: bytes | None = None,
    expect: bytes | None = None,
) -> float:
    """Awaitable :func:`socketkit.wait_for`."""
    result: float = await _core._aio_wait_for(
        targets, port, timeout=timeout, interval=interval, send=send, expect=expect
    )
    return result


async def banner(
    target: Target,
    port: int | None = None,
    *,
    send: bytes | None = None,
    timeout: float = _D["banner_timeout"],
    max_bytes: int = _D["banner_max_bytes"],
) -> bytes:
    """Awaitable :func:`socketkit.banner`."""
    result: bytes = await _core._aio_banner(target, port, send=send, timeout=timeout, max_bytes=max_bytes)
    return result


async def udp_probe(
    target: Target,
    port: int | None = None,
    payload: bytes = b"",
    *,
    timeout: float = _D["udp_timeout"],
    retries: int = _D["udp_retries"],
) -> CheckResult:
    """Awaitable :func:`socketkit.udp_probe`."""
    raw = await _core._aio_udp_probe(target, port, payload, timeout=timeout, retries=retries)
    return CheckResult._make(raw)


_END = object()


async def _stream(start: Any, *args: Any, **kwargs: Any) -> AsyncIterator[CheckResult]:
    """Results of a ``_core`` probe iterator, as they complete. A helper
    thread drains the iterator and hands each result to the loop; leaving
    the ``async for`` (or cancelling the task) closes the iterator, which
    cancels the probes still running."""
    loop = asyncio.get_running_loop()
    raw = await _call(start, *args, **kwargs)
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def pump() -> None:
        try:
            for t in raw:
                loop.call_soon_threadsafe(queue.put_nowait, t)
        except BaseException as e:
            loop.call_soon_threadsafe(queue.put_nowait, e)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    pumping = _call(pump)
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield CheckResult._make(item)
    finally:
        raw.close()
        pumping.cancel()


def check_iter(
    targets: Iterable[Target],
    *,
    timeout: float = _D["check_timeout"],
    concurrency: int = _D["check_concurrency"],
    rate: float | None = None,
) -> AsyncIterator[CheckResult]:
    """``async for r in aio.check_iter(targets)``: :func:`socketkit.check_iter`
    as an async iterator (results in completion order)."""
    return _stream(_core._check_iter, targets, timeout=timeout, concurrency=concurrency, rate=rate)


def scan_iter(
    hosts: str | Iterable[str],
    ports: Ports = _D["scan_ports"],
    *,
    timeout: float = _D["scan_timeout"],
    concurrency: int = _D["scan_concurrency"],
    rate: float | None = None,
) -> AsyncIterator[CheckResult]:
    """``async for r in aio.scan_iter(hosts, ports)``: :func:`socketkit.scan_iter`
    as an async iterator."""
    return _stream(_core._scan_iter, hosts, ports, timeout=timeout, concurrency=concurrency, rate=rate)
