"""The probers: one probe of one target into a fresh CollectorRegistry,
with blackbox_exporter's metric names (``probe_success``,
``probe_duration_seconds``, ``probe_dns_lookup_time_seconds``,
``probe_ip_protocol``, ``probe_ip_addr_hash``,
``probe_failed_due_to_regex``, ``probe_ssl_earliest_cert_expiry``,
``probe_tls_version_info``, ...), so dashboards and alerts written for it
work unchanged. ``udp`` and ``tcping`` add ``probe_udp_*`` and
``probe_tcping_*``.

Each probe logs what it does as blackbox_exporter's probers do (the same
messages, in its logfmt, ``ts caller module target level msg ...``): the
lines ``/probe?debug=true`` shows, and at DEBUG level on the
``socketkit.exporter`` logger.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

import socketkit
from socketkit import aio
from socketkit.exporter.config import Module, TcpingSpec, TcpSpec, TlsSpec, UdpSpec, _Addressing

__all__ = ["ProbeFailed", "ProbeLog", "probe", "run_probe"]

_log = logging.getLogger("socketkit.exporter")
T = TypeVar("T")

#: Name lookups run here, so a silent resolver cannot hold a probe past
#: its timeout (the thread finishes when the system resolver gives up).
_RESOLVER = ThreadPoolExecutor(max_workers=32, thread_name_prefix="socketkit-exporter-dns")


class ProbeFailed(Exception):
    """Why a probe failed (logged; the probe's probe_success is 0)."""


def _logfmt_value(value: object) -> str:
    """A value as go-logfmt writes it: floats in Go's shortest form,
    quoted when it holds a space, '=', '"' or a control character."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = repr(value)
        text = text[:-2] if text.endswith(".0") else text
    else:
        text = str(value)
    if text == "null" or any(c <= " " or c in '="\ufffd' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _go_time(ns: int) -> str:
    """Go's RFC3339Nano in UTC: nanoseconds with trailing zeros dropped."""
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    digits = f"{frac:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


class ProbeLog:
    """One probe's log in blackbox_exporter's logfmt. ``keep``: hold the
    lines (for ``debug=true``); either way each line goes to the
    ``socketkit.exporter`` logger at DEBUG when that is enabled, as
    blackbox_exporter sends probe logs to its own log at debug level."""

    def __init__(self, module: str, target: str, keep: bool = False) -> None:
        self.module = module
        self.target = target
        self.lines: list[str] | None = [] if keep else None
        self.forward = _log.isEnabledFor(logging.DEBUG)
        self.errors = 0

    def __call__(self, level: str, msg: str, **kv: object) -> None:
        if level == "error":
            self.errors += 1
        if self.lines is None and not self.forward:
            return  # the common case: nobody reads the line, so none is made
        frame = sys._getframe(1)
        caller = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
        # A list, not a dict: blackbox repeats a key (target) when a
        # message names the host it resolves.
        fields: list[tuple[str, object]] = [
            ("module", self.module),
            ("target", self.target),
            ("level", level),
            ("msg", msg),
        ]
        fields += kv.items()
        line = f"ts={_go_time(time.time_ns())} caller={caller} " + " ".join(
            f"{k}={_logfmt_value(v)}" for k, v in fields
        )
        if self.lines is not None:
            self.lines.append(line)
        if self.forward:
            _log.debug("%s", line)


class Probe:
    """One probe's registry, its clock, its log, and the metrics every
    prober sets. The gauges are prometheus_client metric families made at
    exposition (the probe is their only collector): a Gauge object per
    metric and its registration cost more than the probe's connect."""

    def __init__(self, timeout: float, log: ProbeLog | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.start = time.monotonic()
        self.deadline = self.start + timeout
        self.log = log if log is not None else ProbeLog("", "")
        #: name -> (help, label names, {label values: value}), in the order set.
        self._gauges: dict[str, tuple[str, tuple[str, ...], dict[tuple[str, ...], float]]] = {}
        self.registry.register(self)  # type: ignore[arg-type]

    def collect(self) -> list[Metric]:
        families: list[Metric] = []
        for name, (doc, names, series) in self._gauges.items():
            fam = GaugeMetricFamily(name, doc, labels=names)
            for values, value in series.items():
                fam.add_metric(values, value)
            families.append(fam)
        return families

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ProbeFailed("timed out")
        return left

    def gauge(self, name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> None:
        # A gauge set twice (TLS, then STARTTLS on the same probe) is one
        # series updated.
        g = self._gauges.get(name)
        if g is None:
            g = self._gauges[name] = (doc, tuple(labels or ()), {})
        g[2][tuple(labels.values()) if labels else ()] = float(value)


def fnv32a(ip: str) -> float:
    """blackbox_exporter's probe_ip_addr_hash: FNV-1a (32 bit) of the
    address's bytes (4 for IPv4, 16 for IPv6)."""
    h = 0x811C9DC5
    for b in ipaddress.ip_address(ip).packed:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return float(h)


async def resolve(p: Probe, host: str, spec: _Addressing) -> str:
    """blackbox_exporter's chooseProtocol: an address of the preferred
    family, else (with ip_protocol_fallback) of the other; the lookup time
    is probe_dns_lookup_time_seconds."""
    want6 = spec.preferred_ip_protocol == "ip6"
    p.log("info", "Resolving target address", target=host, ip_protocol=spec.preferred_ip_protocol)
    t0 = time.monotonic()
    try:
        literal: str | None = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        literal = None
    if literal is not None:
        addrs = [literal]
    else:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(_RESOLVER, socket.getaddrinfo, host, None, 0, socket.SOCK_STREAM)
        try:
            infos = await asyncio.wait_for(fut, p.left())
        except TimeoutError:
            p.log("error", "Resolution with IP protocol failed", target=host, err="timed out")
            raise ProbeFailed(f"resolving {host} timed out") from None
        except OSError as e:
            p.log("error", "Resolution with IP protocol failed", target=host, err=e.strerror or str(e))
            raise ProbeFailed(f"resolving {host}: {e.strerror or e}") from None
        addrs = [str(i[4][0]) for i in infos]
    p.gauge(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        time.monotonic() - t0,
    )
    preferred = [a for a in addrs if (":" in a) == want6]
    chosen = preferred or (addrs if spec.ip_protocol_fallback else [])
    if not chosen:
        why = f"{host} has no {spec.preferred_ip_protocol} address"
        p.log("error", "Error resolving address", err=why)
        raise ProbeFailed(why)
    ip = chosen[0]
    p.log("info", "Resolved target address", target=host, ip=ip)
    p.gauge("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6", 6 if ":" in ip else 4)
    p.gauge(
        "probe_ip_addr_hash",
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        fnv32a(ip),
    )
    return ip


def _source(spec: _Addressing) -> tuple[str, int] | None:
    return (spec.source_ip_address, 0) if spec.source_ip_address else None


def tls_config(spec: TlsSpec, host: str) -> socketkit.TlsConfig:
    server_name = spec.server_name
    if server_name is None:
        try:
            ipaddress.ip_address(host.strip("[]"))
            server_name = host.strip("[]")
        except ValueError:
            server_name = host
    return socketkit.TlsConfig(
        verify=spec.verify,
        ca_file=spec.ca_file,
        cert_file=spec.cert_file,
        key_file=spec.key_file,
        server_hostname=server_name,
        min_version=spec.min_version,
        max_version=spec.max_version,
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def tls_metrics(p: Probe, info: socketkit.TlsInfo | None) -> None:
    if info is None:
        return
    version = info.version.replace("TLSv", "TLS ")  # blackbox writes "TLS 1.3"
    p.gauge(
        "probe_tls_version_info", "Returns the TLS version used or NaN when unknown", 1, {"version": version}
    )
    # The IANA name, as Go's tls.CipherSuiteName gives blackbox_exporter.
    p.gauge(
        "probe_tls_cipher_info",
        "Returns the TLS cipher negotiated during handshake",
        1,
        {"cipher": info.cipher},
    )
    certs = info.certificates
    if certs:
        expiry = min(c.not_after.timestamp() for c in certs)
        p.gauge("probe_ssl_earliest_cert_expiry", "Returns earliest SSL cert expiry date", expiry)
        p.gauge(
            "probe_ssl_last_chain_expiry_timestamp_seconds",
            "Returns last SSL chain expiry in timestamp seconds",
            expiry,
        )
        leaf = certs[0]
        p.gauge(
            "probe_ssl_last_chain_info",
            "Contains SSL leaf certificate information",
            1,
            {
                "fingerprint_sha256": leaf.sha256.replace(":", "").lower(),
                "subject": leaf.subject,
                "issuer": leaf.issuer,
                # blackbox writes the DNS names only (Go's cert.DNSNames).
                "subjectalternative": ",".join(n for n in leaf.sans if not _is_ip(n)),
            },
        )


def _expand(send: str, match: re.Match[bytes] | None) -> bytes:
    """blackbox's ``${1}`` in send: a group of the last expect's match."""
    data = send.encode()
    if match is None:
        return data
    return re.sub(
        rb"\$\{(\w+)\}|\$(\d+)", lambda m: match.expand(b"\\g<" + (m.group(1) or m.group(2)) + b">"), data
    )


async def _expect(
    p: Probe, client: aio.AsyncTcpClient, pattern: re.Pattern[bytes], buf: bytearray
) -> re.Match[bytes]:
    """Read lines until one matches (blackbox matches line by line)."""
    while True:
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            if (m := _match_line(p, pattern, line.rstrip(b"\r"))) is not None:
                return m
        client.settimeout(p.left())
        try:
            chunk = await client.recv(65536)
        except OSError as e:
            p.log("error", "Error reading from connection", err=str(e))
            raise _RegexFailed(f"no line matching {pattern.pattern!r}: {e}") from None
        if not chunk:
            if buf:
                last = bytes(buf)
                buf.clear()
                if (m := _match_line(p, pattern, last)) is not None:
                    return m
            # line is empty as in blackbox (its scanner is past the end);
            # the lines read are in the "Read line" entries above.
            p.log("error", "Regexp did not match", regexp=_text(pattern.pattern), line="")
            raise _RegexFailed(f"closed before a line matched {pattern.pattern!r}")
        buf += chunk
        if len(buf) > 1 << 20:
            raise _RegexFailed("a line longer than 1 MiB")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _match_line(p: Probe, pattern: re.Pattern[bytes], line: bytes) -> re.Match[bytes] | None:
    p.log("debug", "Read line", line=_text(line))
    m = pattern.search(line)
    if m is not None:
        p.log("info", "Regexp matched", regexp=_text(pattern.pattern), line=_text(line))
    return m


class _RegexFailed(ProbeFailed):
    pass


async def probe_tcp(p: Probe, host: str, port: int, spec: TcpSpec) -> None:
    regex = "probe_failed_due_to_regex", "Indicates if probe failed due to regex"
    p.gauge(*regex, 0)
    ip = await resolve(p, host, spec)
    # A TlsConfig reads its CA files when made: only for a TLS probe.
    uses_tls = spec.tls or any(step.starttls for step in spec.query_response)
    tls = tls_config(spec.tls_config, host) if uses_tls else None
    if spec.source_ip_address:
        p.log("info", "Using local address", srcIP=spec.source_ip_address)
    p.log("info", "Dialing TCP with TLS" if spec.tls else "Dialing TCP without TLS")
    try:
        client = await aio.AsyncTcpClient.connect(
            (ip, port), timeout=p.left(), source_address=_source(spec), tls=tls if spec.tls else None
        )
    except OSError as e:
        p.log("error", "Error dialing TCP", err=str(e))
        raise ProbeFailed(f"connect to {ip}:{port}: {e}") from None
    p.log("info", "Successfully dialed")
    try:
        if spec.tls:
            tls_metrics(p, client.tls_info())
        buf = bytearray()
        match: re.Match[bytes] | None = None
        for i, step in enumerate(spec.query_response):
            p.log("info", "Processing query response entry", entry_number=i)
            if step.expect is not None:
                try:
                    match = await _expect(p, client, step.expect, buf)
                except _RegexFailed:
                    p.gauge(*regex, 1)
                    raise
            if step.send is not None:
                line = _expand(step.send, match)
                p.log("debug", "Sending line", line=_text(line))
                client.settimeout(p.left())
                try:
                    await client.sendall(line + b"\n")
                except OSError as e:
                    p.log("error", "Failed to send", err=str(e))
                    raise
            if step.starttls:
                client.settimeout(p.left())
                assert tls is not None
                try:
                    await client.start_tls(tls)
                except OSError as e:
                    p.log("error", "TLS Handshake (client) failed", err=str(e))
                    raise
                p.log("info", "TLS Handshake (client) succeeded.")
                tls_metrics(p, client.tls_info())
    except OSError as e:
        raise ProbeFailed(str(e)) from None
    finally:
        client.close()


async def probe_udp(p: Probe, host: str, port: int, spec: UdpSpec) -> None:
    ip = await resolve(p, host, spec)
    regex = "probe_failed_due_to_regex", "Indicates if probe failed due to regex"
    tries = spec.retries + 1
    try:
        bind = _source(spec) or (("::" if ":" in ip else "0.0.0.0"), 0)
        async with await aio.AsyncUdpSocket.create(bind, connect=(ip, port)) as s:
            p.log("info", "Sending datagram", bytes=len(spec.payload), retries=spec.retries)
            t0 = time.monotonic()
            reply = await s.request(spec.payload, timeout=p.left() / tries, retries=spec.retries)
            p.gauge(
                "probe_udp_reply_seconds",
                "Time from the first datagram sent to the reply",
                time.monotonic() - t0,
            )
    except OSError as e:
        if spec.expect is not None:
            p.gauge(*regex, 0.0)
        p.log("error", "No reply", err=str(e))
        raise ProbeFailed(f"udp {ip}:{port}: {e}") from None
    p.log("info", "Reply received", bytes=len(reply))
    p.gauge("probe_udp_reply_bytes", "Size of the reply datagram", len(reply))
    if spec.expect is not None:
        matched = spec.expect.search(reply) is not None
        p.gauge(*regex, 0.0 if matched else 1.0)
        if matched:
            p.log("info", "Regexp matched", regexp=_text(spec.expect.pattern), line=_text(reply))
        else:
            p.log("error", "Regexp did not match", regexp=_text(spec.expect.pattern), line=_text(reply))
            raise ProbeFailed(f"reply does not match {spec.expect.pattern!r}")


async def probe_tcping(p: Probe, host: str, port: int, spec: TcpingSpec) -> None:
    ip = await resolve(p, host, spec)
    left = p.left()
    per = min(1.0, left)
    # No ping starts after the deadline, and the last may take `per` more.
    deadline = max(left - per, 0.0)
    extra: dict[str, Any] = {}
    if spec.source_ip_address:
        # tcping takes source_address once the service checks have landed.
        if "source_address" not in inspect.signature(socketkit.tcping).parameters:
            raise ProbeFailed("source_ip_address: this socketkit's tcping cannot pick a source address")
        extra["source_address"] = _source(spec)
    p.log("info", "Pinging", count=spec.count, interval_seconds=spec.interval)
    stats = await aio.tcping(
        ip, port, count=spec.count, interval=spec.interval, timeout=per, deadline=deadline, **extra
    )
    p.log("info", "Pings done", sent=stats.sent, received=stats.received, loss_ratio=float(stats.loss))
    p.gauge("probe_tcping_packets_sent", "Handshakes attempted", stats.sent)
    p.gauge("probe_tcping_packets_received", "Handshakes completed", stats.received)
    p.gauge("probe_tcping_loss_ratio", "Handshakes lost, 0-1", stats.loss)
    for name in ("min", "avg", "max", "stdev", "median", "p95", "jitter"):
        v = getattr(stats, name)
        if v is not None:
            p.gauge("probe_tcping_rtt_seconds", "Handshake time statistics", v / 1000, {"stat": name})
    h = Histogram(
        "probe_tcping_rtt_histogram_seconds", "Handshake times", buckets=spec.buckets, registry=p.registry
    )
    for rtt in stats.rtts:
        h.observe(rtt / 1000)
    if not stats.received:
        p.log("error", "No handshake completed", err=stats.errors[-1] if stats.errors else "none sent")
        raise ProbeFailed(f"no handshake completed ({stats.errors[-1] if stats.errors else 'none sent'})")


_PROBERS: dict[str, Callable[..., Awaitable[None]]] = {
    "tcp": lambda p, h, port, m: probe_tcp(p, h, port, m.tcp),
    "udp": lambda p, h, port, m: probe_udp(p, h, port, m.udp),
    "tcping": lambda p, h, port, m: probe_tcping(p, h, port, m.tcping),
}


def run_probe(
    module: Module, host: str, port: int, timeout: float, *, log: ProbeLog | None = None
) -> tuple[CollectorRegistry, bool, str]:
    """Probe ``host:port`` as ``module`` says within ``timeout`` seconds:
    the registry to expose, success, and why it failed ("" on success).
    ``log``: a ProbeLog that receives the probe's log lines. Blocking: the
    exporter itself awaits ``probe`` (the same, as a coroutine) on its
    event loop."""
    return run_sync(probe(module, host, port, timeout, log=log))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """A coroutine's result, from code that does not await."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from a coroutine: asyncio.run needs a thread without a loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def probe(
    module: Module, host: str, port: int, timeout: float, *, log: ProbeLog | None = None
) -> tuple[CollectorRegistry, bool, str]:
    """``run_probe`` as a coroutine (socketkit.aio's clients: no thread per probe)."""
    p = Probe(timeout, log if log is not None else ProbeLog(module.name, f"{host}:{port}"))
    p.log("info", "Beginning probe", probe=module.prober, timeout_seconds=float(timeout))
    why = ""
    try:
        await _PROBERS[module.prober](p, host, port, module)
    except ProbeFailed as e:
        why = str(e)
    except (OSError, ValueError) as e:
        why = f"{type(e).__name__}: {e}"
    ok = not why
    duration = time.monotonic() - p.start
    if ok:
        p.log("info", "Probe succeeded", duration_seconds=round(duration, 9))
    else:
        if not p.log.errors:  # every failure has its reason in the log
            p.log("error", why)
        p.log("error", "Probe failed", duration_seconds=round(duration, 9))
    p.gauge("probe_success", "Displays whether or not the probe was a success", 1.0 if ok else 0.0)
    p.gauge("probe_duration_seconds", "Returns how long the probe took to complete in seconds", duration)
    return p.registry, ok, why
