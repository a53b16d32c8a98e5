"""Ops probes: is it up, how fast does it answer, what is open, wait until
it is up.

Every function runs in Rust with the GIL released (other Python threads
keep running), answers Ctrl-C within about 100 ms, and never leaves a
socket open behind it. Targets are ``"host:port"``, ``"[v6addr]:port"``,
``(host, port)``, or a bare host plus ``port=``. Names are resolved on
helper threads under a deadline (the probe timeout, at least 2 s), so a
silent DNS server cannot hang a run.

The TCP probes are connect scans with nmap's states: ``open`` (handshake
completed), ``closed`` (refused), ``filtered`` (no answer in time, or an
ICMP unreachable), ``error`` (anything else). A name with several
addresses is open if any of them accepts; ``address`` says which one
answered.

Threads and fork: a probe call runs on worker threads (one per CPU) that
end with the call; a ``check_iter``/``scan_iter`` iterator owns its threads
until it is exhausted, closed or garbage-collected. Finish or close such an
iterator before ``fork()``: the child has no copy of its threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

from socketkit import _core
from socketkit._progress import make_progress
from socketkit.results import CheckResult, PingProbe, PingStats, Results, ScanReport

__all__ = [
    "banner",
    "check",
    "check_iter",
    "check_many",
    "scan",
    "scan_iter",
    "tcping",
    "tcping_iter",
    "udp_probe",
    "wait_for",
]

Target = str | tuple[str, int]
Ports = str | int | range | Iterable[int | str]
Progress = bool | Callable[[int, int], Any] | None

_make = CheckResult._make
#: The core's defaults (src/defaults.rs): one definition for the core, these
#: signatures and the CLI.
_D = _core.DEFAULTS


def _proto(proto: object) -> str:
    if not isinstance(proto, str):
        raise TypeError(f"proto must be a str, got {type(proto).__name__}")
    p = proto.lower()
    if p not in ("tcp", "udp"):
        raise ValueError(f"proto must be 'tcp' or 'udp', got {proto!r}")
    return p


def check(
    target: Target, port: int | None = None, *, timeout: float = _D["check_timeout"], proto: str = "tcp"
) -> CheckResult:
    """Is ``target`` open? One probe, one :class:`CheckResult`.

    ``target`` is ``"host:port"``, ``"[v6]:port"``, ``(host, port)``, or a
    host with ``port=``. ``timeout`` (seconds) bounds the connect (and
    separately name resolution, at least 2 s). With ``proto="udp"`` this is
    :func:`udp_probe` with ``timeout`` split over three tries.

    Never raises for a target that is down or a name that does not resolve
    (look at ``state``/``error``); raises ``ValueError``/``TypeError`` for
    malformed arguments.

    >>> socketkit.check("localhost:22")
    CheckResult(localhost:22/tcp open, 0.061 ms, address=127.0.0.1)
    """
    if _proto(proto) == "udp":
        t = None if timeout is None else timeout / 3
        return udp_probe(target, port, timeout=t, retries=2)  # type: ignore[arg-type]
    return _make(_core._check(target, port, timeout=timeout))


def check_many(
    targets: Iterable[Target],
    *,
    timeout: float = _D["check_timeout"],
    concurrency: int = _D["check_concurrency"],
    rate: float | None = None,
    progress: Progress = None,
) -> Results:
    """Probe many TCP targets at once; :class:`Results` in input order.

    ``concurrency`` caps the connects in flight (kept below the process's
    open-file limit, whose soft value is raised to the hard one), ``rate``
    caps new connects per second (nmap's ``--max-rate``). ``progress=True``
    draws a progress bar; a callable gets ``(done, total)``, last with
    ``done == total``. Targets whose name does not resolve come back with
    state ``"error"``.
    """
    bar = make_progress(progress, "check")
    try:
        raw = _core._check_many(
            targets, timeout=timeout, concurrency=concurrency, rate=rate, progress=bar.callback
        )
    finally:
        bar.close()
    return Results(map(_make, raw))


def _stream(raw: _core.ProbeIter, progress: Progress, desc: str) -> Iterator[CheckResult]:
    bar = make_progress(progress, desc)
    cb = bar.callback
    total = raw.total
    done = 0
    try:
        if cb is not None:
            cb(0, total)
        for t in raw:
            done += 1
            yield _make(t)
            if cb is not None:
                cb(done, total)
    finally:
        raw.close()
        bar.close()


def check_iter(
    targets: Iterable[Target],
    *,
    timeout: float = _D["check_timeout"],
    concurrency: int = _D["check_concurrency"],
    rate: float | None = None,
    progress: Progress = None,
) -> Iterator[CheckResult]:
    """Like :func:`check_many`, but yields each :class:`CheckResult` as soon
    as it is known (completion order), for streaming into logs and
    dashboards. Arguments are checked and names resolved at the call;
    closing the iterator (or dropping it) cancels the probes still running.
    """
    raw = _core._check_iter(targets, timeout=timeout, concurrency=concurrency, rate=rate)
    return _stream(raw, progress, "check")


def scan(
    hosts: str | Iterable[str],
    ports: Ports = _D["scan_ports"],
    *,
    timeout: float = _D["scan_timeout"],
    concurrency: int = _D["scan_concurrency"],
    rate: float | None = None,
    progress: Progress = None,
) -> ScanReport:
    """TCP connect scan of ``hosts`` x ``ports``; a :class:`ScanReport`.

    ``hosts``: names, IPv4/IPv6 literals and CIDR blocks (``"10.0.0.0/30"``,
    every address of the block, at most 65,536), as one string separated by
    commas or spaces, or a list. A name is scanned on every address it
    resolves to (a port is open if any address accepts); a name that does
    not resolve raises :class:`socketkit.ResolveError`.
    ``ports``: ``"22,80,8000-8100"``, ``"-"`` (all), an int, a ``range`` or
    a list of those. ``timeout`` is per connect: silence that long means
    ``filtered``. ``concurrency``, ``rate`` and ``progress`` as in
    :func:`check_many`.

    A full 65,535-port scan of loopback takes well under a second.
    """
    bar = make_progress(progress, "scan")
    start = time.perf_counter()
    try:
        raw = _core._scan(
            hosts, ports, timeout=timeout, concurrency=concurrency, rate=rate, progress=bar.callback
        )
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    results = list(map(_make, raw))
    nhosts = len({r.host for r in results}) or 1
    return ScanReport(results, ports=len(results) // nhosts, elapsed=elapsed)


def scan_iter(
    hosts: str | Iterable[str],
    ports: Ports = _D["scan_ports"],
    *,
    timeout: float = _D["scan_timeout"],
    concurrency: int = _D["scan_concurrency"],
    rate: float | None = None,
    progress: Progress = None,
) -> Iterator[CheckResult]:
    """Like :func:`scan`, but yields each :class:`CheckResult` as it
    completes. Closing the iterator cancels the rest of the scan."""
    raw = _core._scan_iter(hosts, ports, timeout=timeout, concurrency=concurrency, rate=rate)
    return _stream(raw, progress, "scan")


def _pings(raw: _core.PingStream) -> Iterator[tuple[str, int, PingProbe]]:
    try:
        for seq, t, host, address, port, state, rtt_ms, error in raw:
            yield host, port, PingProbe(seq, t, state, address, rtt_ms, error)  # type: ignore[arg-type]
    finally:
        raw.close()


def tcping(
    target: Target,
    port: int | None = None,
    *,
    count: int | None = _D["ping_count"],
    interval: float = _D["ping_interval"],
    timeout: float = _D["ping_timeout"],
    deadline: float | None = None,
    resolve_every: int | None = None,
) -> PingStats:
    """Ping with TCP handshakes: ``count`` connects, one every ``interval``
    seconds (start to start), each timed from ``connect()`` to the
    handshake's end; a refused or timed-out connect is a lost ping.
    Returns :class:`PingStats`. A name is pinged on the first of its
    addresses that accepts (else its first address). Raises
    :class:`socketkit.ResolveError` if the name does not resolve at the
    first ping.

    ``count=None`` pings until Ctrl-C or ``deadline``: as ``ping`` does,
    Ctrl-C then ends the run and the statistics so far are returned (no
    ``KeyboardInterrupt``; with a ``count``, Ctrl-C raises it as usual).
    ``deadline`` (seconds) starts no ping after that time, whatever
    ``count`` says. ``resolve_every=N`` resolves the name again after N
    failed pings in a row, so a service that moved to another address is
    found (``PingStats.address_changes`` lists the moves).
    """
    raw = _core._tcping_stream(
        target,
        port,
        count=count,
        interval=interval,
        timeout=timeout,
        deadline=deadline,
        resolve_every=resolve_every,
    )
    probes: list[PingProbe] = []
    where = ("", 0)
    try:
        for host, port_, p in _pings(raw):
            where = (host, port_)
            probes.append(p)
    except KeyboardInterrupt:
        if count is not None or not probes:
            raise
    return ping_stats(*where, probes, time.time())


def ping_stats(host: str, port: int, probes: list[PingProbe], end: float | None) -> PingStats:
    """The :class:`PingStats` of a run of pings."""
    address = next((p.address for p in probes if p.address is not None), "")
    return PingStats(
        host,
        address,
        port,
        [p.rtt_ms if p.ok else None for p in probes],
        [None if p.ok else (p.error or p.state) for p in probes],
        probes=probes,
        end=end,
    )


def tcping_iter(
    target: Target,
    port: int | None = None,
    *,
    count: int | None = None,
    interval: float = _D["ping_interval"],
    timeout: float = _D["ping_timeout"],
    deadline: float | None = None,
    resolve_every: int | None = None,
) -> Iterator[PingProbe]:
    """:func:`tcping` as a stream: yields each :class:`PingProbe` as it is
    made, for monitoring loops and logs. Runs until ``count`` pings (by
    default forever), ``deadline`` seconds, or the iterator is closed;
    closing it from another thread ends a ping under way within 100 ms.
    Arguments are checked at the call; a name that does not resolve at the
    first ping raises :class:`socketkit.ResolveError` from the first
    ``next()``, later failures to resolve are pings with state ``"error"``.
    """
    raw = _core._tcping_stream(
        target,
        port,
        count=count,
        interval=interval,
        timeout=timeout,
        deadline=deadline,
        resolve_every=resolve_every,
    )
    return (p for _h, _p, p in _pings(raw))


def wait_for(
    targets: Target | Iterable[Target],
    port: int | None = None,
    *,
    timeout: float = _D["wait_timeout"],
    interval: float = _D["wait_interval"],
    send: bytes | None = None,
    expect: bytes | None = None,
    state: Literal["open", "closed", "drained"] = "open",
    delay: float = 0.0,
    connect_timeout: float | None = None,
    drain_ignore: Iterable[str] = ("TIME_WAIT",),
) -> float:
    """Wait until every target accepts a connection; return the seconds
    waited (``wait-for-it`` for several services at once).

    With ``send``, each connection first sends those bytes; with
    ``expect``, the target counts as up only once its reply contains
    ``expect``. Failed attempts are retried after ``interval`` seconds,
    backing off 1.5x per failure up to 1 s (or ``interval`` if larger).
    Raises :class:`socketkit.TimeoutError` after ``timeout`` seconds; its
    message and ``targets`` attribute name the targets still down, and the
    message says why each one is.

    ``state="closed"`` waits instead until each target refuses
    connections or stops answering (a name that does not resolve is not
    closed: the wait goes on). ``state="drained"`` waits until no
    connection remains on each target's port on this machine (read from
    ``/proc/net/tcp`` and ``tcp6``; the host part, if an IP address, also
    picks the local address), counting every state but LISTEN and those
    in ``drain_ignore`` (``ss``'s names: ``"TIME_WAIT"``,
    ``"CLOSE_WAIT"``, ...). ``delay`` seconds pass before the first
    attempt, inside ``timeout`` (as ansible's ``wait_for``);
    ``connect_timeout`` bounds each attempt (default 5 s), always within
    what is left of ``timeout``.
    """
    if state == "open" and delay == 0.0 and connect_timeout is None:
        return _core._wait_for(targets, port, timeout=timeout, interval=interval, send=send, expect=expect)
    return _core._wait_until(
        targets,
        port,
        timeout=timeout,
        interval=interval,
        send=send,
        expect=expect,
        state=state,
        delay=delay,
        connect_timeout=connect_timeout,
        drain_ignore=drain_ignore,
    )


def banner(
    target: Target,
    port: int | None = None,
    *,
    send: bytes | None = None,
    timeout: float = _D["banner_timeout"],
    max_bytes: int = _D["banner_max_bytes"],
) -> bytes:
    """Connect, send ``send`` if given, and return what the service says
    first: up to ``max_bytes``, read until the peer closes, ``timeout``
    passes, or 100 ms pass without more data after the first bytes.
    Returns ``b""`` if the service stays silent. A connect that fails
    raises (``ConnectionRefusedError``, ``TimeoutError``, ...)."""
    return _core._banner(target, port, send=send, timeout=timeout, max_bytes=max_bytes)


def udp_probe(
    target: Target,
    port: int | None = None,
    payload: bytes = b"",
    *,
    timeout: float = _D["udp_timeout"],
    retries: int = _D["udp_retries"],
) -> CheckResult:
    """Probe a UDP port: send ``payload`` on a connected socket and wait up
    to ``timeout`` seconds for a reply, ``retries`` more times on silence.

    ``state`` is ``"open"`` (a reply came back), ``"closed"`` (ICMP port
    unreachable, which Linux reports on a connected socket) or
    ``"open|filtered"`` (silence: UDP cannot tell an open service that
    ignores the payload from a firewall that drops it). Many services only
    answer a payload in their protocol (DNS, NTP, SNMP).
    """
    return _make(_core._udp_probe(target, port, payload, timeout=timeout, retries=retries))
