"""socketkit for asyncio (and uvloop): the same clients and probes as
awaitables, with real cancellation.

    from socketkit import aio

    async with await aio.AsyncTcpClient.connect(("example.org", 80)) as c:
        await c.sendall(b"HEAD / HTTP/1.0\\r\\n\\r\\n")
        print(await c.recv_line())
    report = await aio.scan("127.0.0.1", "1-1024")

How it runs (measured on a 2-core VM, ``benches/aio.py``):

- ``AsyncTcpClient`` reads on the event loop's own thread: all clients
  of a loop sit in one epoll instance that the loop watches, and one
  callback answers every client that became readable, with the same read
  buffer and framing as ``TcpClient`` (``recv_line`` then ``recv`` loses
  nothing). ``send``/``sendall`` go out at once when the kernel takes
  them (always, for small writes); ``request`` hands its write (up to
  16 KiB) to one task on socketkit's own tokio runtime, which sends the
  writes of all clients off the loop's thread: on loopback ``send()``
  runs the peer's side of TCP inside the syscall, ~2 us of the loop's
  ~6 us per request (a write that fails there fails the reply). Writes
  of one client keep their order whichever way they go. Connects (Happy
  Eyeballs under one deadline) and writes that must wait run on the
  runtime too. No Python thread per call. 1,000 concurrent 64-byte
  request/response clients in one loop (``benches/aio.py``, quiet 2-core
  machine, medians of 7 rounds): ~152,000 requests/s against ~101,000-
  105,000 for asyncio streams (1.46-1.50x) and ~158,000-164,000 on uvloop
  against ~132,000 for uvloop streams (1.20-1.24x); the loop's thread
  spends ~3.9 us of CPU per request (asyncio streams ~9.6 us, uvloop
  streams ~7.5 us), no longer the limit: the two cores are (the echo
  server runs on them too). Reads as tokio tasks handed back to the loop
  made only ~67,000 requests/s: see ``src/py/aio_reader.rs``.
- ``AsyncUdpSocket`` and the connect run on the runtime; each awaitable
  is a future of the running loop, and finished operations are handed to
  the loop in batches through one eventfd per thread that the loop
  watches, their results set on the loop's own thread. That bridge did
  184,000-272,000 awaits/s against 13,800-29,400/s for
  pyo3-async-runtimes' ``future_into_py`` (7.7-17x over three runs; it
  takes the GIL on a pool thread and calls ``call_soon_threadsafe`` once
  per result), so the bridge is socketkit's own (``benches/aio.py``
  repeats the comparison on a build with ``--features bench-pyo3-async``;
  the shipped module does not carry pyo3-async-runtimes).
- The probes (``check``, ``check_many``, ``scan``, ``tcping``,
  ``wait_for``, ``banner``, ``udp_probe``, ``tls_check``,
  ``tls_check_many``, and the ``check_iter`` / ``scan_iter`` /
  ``tls_check_iter`` async iterators) take every argument of the blocking
  ones and return the same results. Each runs the core's probe on one
  helper thread per call, which ends with the call. The plain forms of
  ``check``, ``check_many``, ``scan``, ``wait_for``, ``banner`` and
  ``udp_probe`` read their arguments and build their results on the
  loop's thread (a big result a chunk per loop turn), so their helper
  thread never takes the GIL: with the GIL handed between threads
  instead, 100 concurrent ``wait_for`` or a full scan's 65,535 results
  left the loop waiting 60-100 ms on a loaded 2-core machine; this way a
  heartbeat every 10 ms saw no gap over ~20 ms during a full-range scan.
  The other forms (service checks, TLS checks, ``tcping``, ``wait_for``
  states, the iterators) call the blocking function itself on the helper
  thread, which takes the GIL only to read arguments and build results,
  in the interpreter's 5 ms turns. ``await scan(...)`` is the blocking
  scan's engine: a full loopback scan took 0.370 s awaited against 0.342 s
  blocking (medians of 5 interleaved runs, busy machine). A ``progress``
  callable is called from the helper thread.

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
objects made before the fork belong to the parent.

TLS: ``await AsyncTcpClient.connect(address, tls=True | TlsConfig(...))``
takes every TLS argument of ``TcpClient`` (the handshake runs inside the
connect's one deadline), ``await client.start_tls(tls, starttls=...)``
upgrades a plaintext connection, ``await client.run_steps(steps)`` runs a
dialogue, and ``client.tls_info()`` says what was agreed. It is the core's
own TLS (rustls, the same session code as ``TcpClient``), driven without
blocking: the handshake on the runtime, decryption in the loop's reader,
so a TLS client costs no thread either. Two things exist in the core only
in blocking form and run on a helper thread over the client's socket,
which ends with the call: a ``starttls=`` preset's plaintext exchange (and
its handshake), and ``run_steps``. Cancelling a handshake, a
``start_tls`` or a ``run_steps`` closes the client (its protocol state is
unknown); a cancelled ``connect`` closes its socket. While one of them
runs, other calls on the client raise ``ValueError`` (they would take the
handshake's bytes).

``tcp_info()``, ``from_socket(sock)`` (a plain call inside a running loop:
no I/O) and ``detach()`` work as on ``TcpClient``; ``detach`` is refused
under TLS, with bytes buffered, or with a call in flight.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

from socketkit import _aio_core, _core, ping_probes, probes, tls_probes  # noqa: F401 (_core first: it makes _aio_core)
from socketkit._aio_core import AsyncLineIterator, AsyncTcpClient, AsyncUdpSocket
from socketkit._progress import progress_for
from socketkit.results import CheckResult, Results, ScanReport
from socketkit.tls_results import TlsResults

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
    "tls_check",
    "tls_check_iter",
    "tls_check_many",
    "udp_probe",
    "wait_for",
]

P = ParamSpec("P")
R = TypeVar("R")
Args = dict[str, Any]
_call = _aio_core._aio_call
#: Result objects built per loop turn: ~1-2 ms of the loop's time each.
_CHUNK = 1024


async def _collect(raw: _aio_core.AioResults) -> list[CheckResult]:
    """The results of a finished run, built a chunk per loop turn so a
    65,535-port scan never holds the loop for long."""
    out: list[CheckResult] = []
    while chunk := raw.take(_CHUNK):
        out.extend(map(CheckResult._make, chunk))
        await asyncio.sleep(0)
    return out


def _awaitable(
    blocking: Callable[P, R], fast: Callable[[Args], Awaitable[R] | None] | None = None
) -> Callable[P, Coroutine[Any, Any, R]]:
    """The awaitable form of a blocking probe, with its signature. ``fast``
    takes the bound arguments and returns the GIL-free form when the
    arguments allow it (None: they do not); otherwise the blocking
    function itself runs on a helper thread (``_aio_call``)."""
    sig = inspect.signature(blocking)

    @functools.wraps(blocking)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if fast is not None:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            aw = fast(bound.arguments)
            if aw is not None:
                return await aw
        result: R = await _call(blocking, *args, **kwargs)
        return result

    run.__doc__ = f"Awaitable :func:`socketkit.{blocking.__name__}`: the same arguments and result."
    return run


def _aiter(blocking: Callable[P, Iterator[R]]) -> Callable[P, AsyncIterator[R]]:
    """The async-iterator form of a blocking ``*_iter`` probe: a helper
    thread drains the blocking iterator and hands each result to the loop;
    leaving the ``async for`` (or cancelling the task) cancels the helper,
    whose iterator then stops within one wait slice and closes, which
    cancels the probes still running."""

    @functools.wraps(blocking)
    async def run(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening
                pass

        def pump() -> None:
            it = blocking(*args, **kwargs)
            try:
                for r in it:
                    put(r)
            except BaseException as e:
                put(e)
                return
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
            put(_END)

        pumping = _call(pump)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            pumping.cancel()

    run.__doc__ = f"``async for`` form of :func:`socketkit.{blocking.__name__}`: the same arguments."
    return run


_END = object()


async def _one(raw: Awaitable[_aio_core.AioResults]) -> CheckResult:
    (result,) = await _collect(await raw)
    return result


def _fast_check(a: Args) -> Awaitable[CheckResult] | None:
    if probes._proto(a["proto"]) != "tcp" or probes._service(
        a["steps"], a["service"], a["tls"], a["starttls"]
    ):
        return None
    return _one(
        _aio_core._aio_check(
            a["target"],
            a["port"],
            timeout=a["timeout"],
            family=a["family"],
            source_address=a["source_address"],
        )
    )


async def _check_many(a: Args) -> Results:
    with progress_for(a["progress"], "check") as cb:
        raw = await _aio_core._aio_check_many(
            a["targets"],
            timeout=a["timeout"],
            concurrency=a["concurrency"],
            rate=a["rate"],
            progress=cb,
            family=a["family"],
            source_address=a["source_address"],
            each_address=a["each_address"],
        )
    return Results(await _collect(raw))


def _fast_check_many(a: Args) -> Awaitable[Results] | None:
    if probes._service(a["steps"], a["service"], a["tls"], a["starttls"]):
        return None
    return _check_many(a)


async def _scan(a: Args) -> ScanReport:
    start = time.perf_counter()
    with progress_for(a["progress"], "scan") as cb:
        raw = await _aio_core._aio_scan(
            a["hosts"],
            a["ports"],
            timeout=a["timeout"],
            concurrency=a["concurrency"],
            rate=a["rate"],
            progress=cb,
            family=a["family"],
            source_address=a["source_address"],
        )
    elapsed = time.perf_counter() - start
    results = await _collect(raw)
    nhosts = len({r.host for r in results}) or 1
    return ScanReport(results, ports=len(results) // nhosts, elapsed=elapsed)


def _fast_wait_for(a: Args) -> Awaitable[float] | None:
    plain = a["state"] == "open" and a["delay"] == 0.0 and a["connect_timeout"] is None
    extra = probes._service(a["steps"], a["service"], a["tls"], a["starttls"])
    if not plain or extra or a["family"] is not None or a["source_address"] is not None:
        return None
    return _aio_core._aio_wait_for(
        a["targets"],
        a["port"],
        timeout=a["timeout"],
        interval=a["interval"],
        send=a["send"],
        expect=a["expect"],
    )


def _fast_banner(a: Args) -> Awaitable[bytes] | None:
    if probes._service(a["steps"], None, a["tls"], a["starttls"]):
        return None
    return _aio_core._aio_banner(
        a["target"],
        a["port"],
        send=a["send"],
        timeout=a["timeout"],
        max_bytes=a["max_bytes"],
        family=a["family"],
        source_address=a["source_address"],
    )


async def _udp_probe(a: Args) -> CheckResult:
    raw = await _aio_core._aio_udp_probe(
        a["target"],
        a["port"],
        a["payload"],
        timeout=a["timeout"],
        retries=a["retries"],
        family=a["family"],
        source_address=a["source_address"],
    )
    return CheckResult._make(raw)


async def _tls_check_many(a: Args) -> TlsResults:
    # The bar lives on the loop's side, closed however the await ends
    # (cancelled included); the helper thread only calls the callback.
    with progress_for(a["progress"], "tls") as cb:
        result: TlsResults = await _call(tls_probes.tls_check_many, **{**a, "progress": cb})
    return result


check = _awaitable(probes.check, _fast_check)
check_many = _awaitable(probes.check_many, _fast_check_many)
scan = _awaitable(probes.scan, _scan)
wait_for = _awaitable(probes.wait_for, _fast_wait_for)
banner = _awaitable(probes.banner, _fast_banner)
udp_probe = _awaitable(probes.udp_probe, _udp_probe)
tcping = _awaitable(ping_probes.tcping)
tls_check = _awaitable(tls_probes.tls_check)
tls_check_many = _awaitable(tls_probes.tls_check_many, _tls_check_many)
check_iter = _aiter(probes.check_iter)
scan_iter = _aiter(probes.scan_iter)
tls_check_iter = _aiter(tls_probes.tls_check_iter)
