"""Ops probes: is it up, how fast does it answer, what is open, wait until
it is up.

Every function runs in Rust with the GIL released (other Python threads
keep running), answers Ctrl-C within about 100 ms, and never leaves a
socket open behind it. Targets are ``"host:port"``, ``"[v6addr]:port"``,
``(host, port)``, or a bare host plus ``port=``. Names are resolved on
helper threads under a deadline (the probe timeout, at least 2 s), so a
silent DNS server cannot hang a run.

Address control: ``family="ipv4"`` or ``"ipv6"`` resolves and tries only
that family; ``source_address=(ip, port)`` (port 0 for any) binds every
connect to a local address; ``each_address=True`` on ``check_many`` /
``check_iter`` gives one result per address a name resolves to.

Service checks: ``steps=`` (see :mod:`socketkit.service`), ``service=``,
``tls=`` and ``starttls=`` on ``check``, ``check_many`` and ``check_iter``
run connect + TLS / STARTTLS + dialogue per target on a bounded pool of
threads (at most 256), under the per-target ``timeout``.

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

import errno
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

from socketkit import _core, _probe_core
from socketkit._progress import make_progress, stream
from socketkit.exceptions import ConnectionRefusedError, Error, TimeoutError
from socketkit.ping_probes import tcping, tcping_iter
from socketkit.results import CheckResult, Results, ScanReport
from socketkit.service import SERVICES, Step, _send_expect_steps, _why_down

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
Family = str | None
Source = tuple[str, int] | str | None

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


def _service(steps: Any, service: Any, tls: Any, starttls: Any) -> bool:
    """Does this check need more than a handshake (the service-check pool)?"""
    return steps is not None or service is not None or starttls is not None or tls not in (None, False)


def check(
    target: Target,
    port: int | None = None,
    *,
    timeout: float = _D["check_timeout"],
    proto: str = "tcp",
    family: Family = None,
    source_address: Source = None,
    steps: Iterable[Step] | None = None,
    service: str | None = None,
    tls: Any = None,
    starttls: str | None = None,
) -> CheckResult:
    """Is ``target`` open? One probe, one :class:`CheckResult`.

    ``target`` is ``"host:port"``, ``"[v6]:port"``, ``(host, port)``, or a
    host with ``port=``. ``timeout`` (seconds) bounds the connect (and
    separately name resolution, at least 2 s). With ``proto="udp"`` this is
    :func:`udp_probe` with ``timeout`` split over three tries.

    ``steps``/``service``/``tls``/``starttls`` make it a service check:
    after the connect, TLS (``tls=True`` or a ``TlsConfig``; with
    ``starttls="smtp"`` and the other presets, after their plaintext
    exchange) and the dialogue run, all within ``timeout``; ``open`` only
    when every step passed. ``family`` and ``source_address`` as in the
    module's docs.

    Never raises for a target that is down or a name that does not resolve
    (look at ``state``/``error``); raises ``ValueError``/``TypeError`` for
    malformed arguments.

    >>> socketkit.check("localhost:22")
    CheckResult(localhost:22/tcp open, 0.061 ms, address=127.0.0.1)
    """
    if _proto(proto) == "udp":
        if _service(steps, service, tls, starttls):
            raise ValueError("proto='udp' takes no steps, service, tls or starttls")
        t = None if timeout is None else timeout / 3
        return udp_probe(target, port, timeout=t, retries=2, family=family, source_address=source_address)  # type: ignore[arg-type]
    if _service(steps, service, tls, starttls):
        return _make(
            _probe_core._service_check(
                target,
                port,
                timeout=timeout,
                family=family,
                source_address=source_address,
                steps=steps,
                service=service,
                tls=tls,
                starttls=starttls,
            )
        )
    return _make(
        _probe_core._check(target, port, timeout=timeout, family=family, source_address=source_address)
    )


def check_many(
    targets: Iterable[Target],
    *,
    timeout: float = _D["check_timeout"],
    concurrency: int = _D["check_concurrency"],
    rate: float | None = None,
    progress: Progress = None,
    family: Family = None,
    source_address: Source = None,
    each_address: bool = False,
    steps: Iterable[Step] | None = None,
    service: str | None = None,
    tls: Any = None,
    starttls: str | None = None,
) -> Results:
    """Probe many TCP targets at once; :class:`Results` in input order.

    ``concurrency`` caps the connects in flight (kept below the process's
    open-file limit, whose soft value is raised to the hard one), ``rate``
    caps new connects per second (nmap's ``--max-rate``: close to the cap
    when the machine keeps up; after a stall, at most 50 ms' worth of
    connects catch up at once, never more). ``progress=True``
    draws a progress bar; a callable gets ``(done, total)``, last with
    ``done == total``. Targets whose name does not resolve come back with
    state ``"error"``. ``each_address=True``: one result per address of a
    name (in Happy Eyeballs order) instead of one per target. ``steps``,
    ``service``, ``tls``, ``starttls``: service checks as in :func:`check`,
    ``concurrency`` of them at once (at most 256; ``rate`` does not apply).
    """
    bar = make_progress(progress, "check")
    try:
        if _service(steps, service, tls, starttls):
            raw = _probe_core._service_check_many(
                targets,
                timeout=timeout,
                concurrency=concurrency,
                progress=bar.callback,
                family=family,
                source_address=source_address,
                each_address=each_address,
                steps=steps,
                service=service,
                tls=tls,
                starttls=starttls,
            )
        else:
            raw = _probe_core._check_many(
                targets,
                timeout=timeout,
                concurrency=concurrency,
                rate=rate,
                progress=bar.callback,
                family=family,
                source_address=source_address,
                each_address=each_address,
            )
    finally:
        bar.close()
    return Results(map(_make, raw))


def check_iter(
    targets: Iterable[Target],
    *,
    timeout: float = _D["check_timeout"],
    concurrency: int = _D["check_concurrency"],
    rate: float | None = None,
    progress: Progress = None,
    family: Family = None,
    source_address: Source = None,
    each_address: bool = False,
    steps: Iterable[Step] | None = None,
    service: str | None = None,
    tls: Any = None,
    starttls: str | None = None,
) -> Iterator[CheckResult]:
    """Like :func:`check_many`, but yields each :class:`CheckResult` as soon
    as it is known (completion order), for streaming into logs and
    dashboards. Arguments are checked and names resolved at the call;
    closing the iterator (or dropping it) cancels the probes still running.
    """
    raw: _probe_core.ProbeIter | _probe_core.ServiceIter
    if _service(steps, service, tls, starttls):
        raw = _probe_core._service_check_iter(
            targets,
            timeout=timeout,
            concurrency=concurrency,
            family=family,
            source_address=source_address,
            each_address=each_address,
            steps=steps,
            service=service,
            tls=tls,
            starttls=starttls,
        )
    else:
        raw = _probe_core._check_iter(
            targets,
            timeout=timeout,
            concurrency=concurrency,
            rate=rate,
            family=family,
            source_address=source_address,
            each_address=each_address,
        )
    return stream(raw, _make, progress, "check")


def scan(
    hosts: str | Iterable[str],
    ports: Ports = _D["scan_ports"],
    *,
    timeout: float = _D["scan_timeout"],
    concurrency: int = _D["scan_concurrency"],
    rate: float | None = None,
    progress: Progress = None,
    family: Family = None,
    source_address: Source = None,
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
        raw = _probe_core._scan(
            hosts,
            ports,
            timeout=timeout,
            concurrency=concurrency,
            rate=rate,
            progress=bar.callback,
            family=family,
            source_address=source_address,
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
    family: Family = None,
    source_address: Source = None,
) -> Iterator[CheckResult]:
    """Like :func:`scan`, but yields each :class:`CheckResult` as it
    completes. Closing the iterator cancels the rest of the scan."""
    raw = _probe_core._scan_iter(
        hosts,
        ports,
        timeout=timeout,
        concurrency=concurrency,
        rate=rate,
        family=family,
        source_address=source_address,
    )
    return stream(raw, _make, progress, "scan")


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
    steps: Iterable[Step] | None = None,
    service: str | None = None,
    tls: Any = None,
    starttls: str | None = None,
    family: Family = None,
    source_address: Source = None,
) -> float:
    """Wait until every target accepts a connection; return the seconds
    waited (``wait-for-it`` for several services at once).

    With ``send``, each connection first sends those bytes; with
    ``expect``, the target counts as up only once its reply contains
    ``expect``. With ``steps`` (or ``service``, ``tls``, ``starttls``), a
    target is up only once a service check of it passes every step (see
    :func:`check`). Failed attempts are retried after ``interval`` seconds,
    backing off 1.5x per failure up to 1 s (or ``interval`` if larger).
    Raises :class:`socketkit.TimeoutError` after ``timeout`` seconds; its
    message and ``targets`` attribute name the targets still down, and the
    message says why each one is (a reply that did not match ``expect``:
    the bytes that came instead).

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
    service_args = _service(steps, service, tls, starttls) or family is not None or source_address is not None
    if state != "open" or delay != 0.0 or connect_timeout is not None:
        if service_args:
            raise ValueError(
                "state, delay and connect_timeout do not combine with steps, service, tls, "
                "starttls, family or source_address"
            )
        return _probe_core._wait_until(
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
    if send is not None or expect is not None:
        if _service(steps, service, tls, starttls):
            raise ValueError(
                "send/expect and steps: give the dialogue one way (steps=[Send(...), Expect(...)])"
            )
        # The dialogue path: a reply that did not match is reported as such.
        steps = _send_expect_steps(send, expect)
    if _service(steps, service, tls, starttls) or family is not None or source_address is not None:
        return _wait_service(
            targets, port, timeout, interval, steps, service, tls, starttls, family, source_address
        )
    return _probe_core._wait_until(
        targets,
        port,
        timeout=timeout,
        interval=interval,
        send=None,
        expect=None,
        state="open",
        delay=0.0,
        connect_timeout=None,
        drain_ignore=drain_ignore,
    )


def _wait_service(
    targets: Target | Iterable[Target],
    port: int | None,
    timeout: float | None,
    interval: float,
    steps: Iterable[Step] | None,
    service: str | None,
    tls: Any,
    starttls: str | None,
    family: Family,
    source_address: Source,
) -> float:
    """``wait_for`` through service checks: every round checks the targets
    still down at once, then sleeps with the same backoff as the core."""
    single = isinstance(targets, str) or (
        isinstance(targets, tuple) and len(targets) == 2 and isinstance(targets[1], int)
    )
    items: list[Any] = [targets] if single else list(targets)  # type: ignore[arg-type]
    if not items:
        raise ValueError("targets: no target given")
    if port is not None:
        items = [(t, port) if isinstance(t, str) else t for t in items]
    steps = None if steps is None else list(steps)
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    pause = max(interval, 0.001)
    while True:
        left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        per = 5.0 if left is None else min(left, 5.0)
        res = _probe_core._service_check_many(
            items,
            timeout=per,
            family=family,
            source_address=source_address,
            steps=steps,
            service=service,
            tls=tls,
            starttls=starttls,
        )
        down = [(t, _make(r)) for t, r in zip(items, res, strict=True) if r[4] != "open"]
        if not down:
            return time.monotonic() - start
        if deadline is not None and time.monotonic() + pause >= deadline:
            said = steps if steps is not None else SERVICES.get((service or "").lower(), ())
            why = ", ".join(f"{r.target} ({_why_down(r, said)})" for _, r in down)
            e = TimeoutError(
                errno.ETIMEDOUT, f"timed out after {time.monotonic() - start:.1f} s waiting for {why}"
            )
            e.targets = [r.target for _, r in down]  # type: ignore[attr-defined]
            raise e
        time.sleep(pause)
        pause = min(pause * 1.5, max(1.0, interval))
        items = [t for t, _ in down]


def banner(
    target: Target,
    port: int | None = None,
    *,
    send: bytes | None = None,
    timeout: float = _D["banner_timeout"],
    max_bytes: int = _D["banner_max_bytes"],
    family: Family = None,
    source_address: Source = None,
    steps: Iterable[Step] | None = None,
    tls: Any = None,
    starttls: str | None = None,
) -> bytes:
    """Connect, send ``send`` if given, and return what the service says
    first: up to ``max_bytes``, read until the peer closes, ``timeout``
    passes, or 100 ms pass without more data after the first bytes.
    Returns ``b""`` if the service stays silent. A connect that fails
    raises (``ConnectionRefusedError``, ``TimeoutError``, ...).

    With ``steps`` (and ``tls``/``starttls``), the dialogue runs first and
    the banner is what the service says after it (e.g. the EHLO answer
    after ``[StartTls("smtp"), Send(b"EHLO me\\r\\n")]``); a step that
    fails raises :class:`socketkit.Error` naming the step and the bytes
    received."""
    if not _service(steps, None, tls, starttls):
        return _probe_core._banner(
            target,
            port,
            send=send,
            timeout=timeout,
            max_bytes=max_bytes,
            family=family,
            source_address=source_address,
        )
    if send is not None:
        raise ValueError("send and steps: put the bytes in the steps (steps=[Send(...), ...])")
    t, said = _probe_core._service_banner(
        target,
        port,
        max_bytes=max_bytes,
        timeout=timeout,
        family=family,
        source_address=source_address,
        steps=steps,
        tls=tls,
        starttls=starttls,
    )
    r = _make(t)
    if r.ok and said is not None:
        return said
    raise _failure(r)


def _failure(r: CheckResult) -> OSError:
    """The exception a failed check means, in the classes a connect raises."""
    if r.state == "closed":
        return ConnectionRefusedError(errno.ECONNREFUSED, f"{r.error or 'Connection refused'} ({r.target})")
    if r.state == "filtered":
        return TimeoutError(errno.ETIMEDOUT, f"{r.error or 'timed out'} ({r.target})")
    msg = f"{r.error} ({r.target})"
    if r.failed_step is not None:
        msg += f"; received {r.received!r}"
    return Error(msg)


def udp_probe(
    target: Target,
    port: int | None = None,
    payload: bytes = b"",
    *,
    timeout: float = _D["udp_timeout"],
    retries: int = _D["udp_retries"],
    family: Family = None,
    source_address: Source = None,
) -> CheckResult:
    """Probe a UDP port: send ``payload`` on a connected socket and wait up
    to ``timeout`` seconds for a reply, ``retries`` more times on silence.

    ``state`` is ``"open"`` (a reply came back), ``"closed"`` (ICMP port
    unreachable, which Linux reports on a connected socket) or
    ``"open|filtered"`` (silence: UDP cannot tell an open service that
    ignores the payload from a firewall that drops it). Many services only
    answer a payload in their protocol (DNS, NTP, SNMP).
    """
    return _make(
        _probe_core._udp_probe(
            target,
            port,
            payload,
            timeout=timeout,
            retries=retries,
            family=family,
            source_address=source_address,
        )
    )
