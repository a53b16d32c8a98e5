"""The probers: one probe of one target into a fresh CollectorRegistry,
with blackbox_exporter's metric names (``probe_success``,
``probe_duration_seconds``, ``probe_dns_lookup_time_seconds``,
``probe_ip_protocol``, ``probe_ip_addr_hash``,
``probe_failed_due_to_regex``, ``probe_ssl_earliest_cert_expiry``,
``probe_tls_version_info``, ...), so dashboards and alerts written for it
work unchanged. ``udp`` and ``tcping`` add ``probe_udp_*`` and
``probe_tcping_*``.
"""

from __future__ import annotations

import inspect
import ipaddress
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram

import socketkit
from socketkit.exporter.config import Module, TcpingSpec, TcpSpec, TlsSpec, UdpSpec, _Addressing

__all__ = ["ProbeFailed", "run_probe"]

#: Name lookups run here, so a silent resolver cannot hold a probe past
#: its timeout (the thread finishes when the system resolver gives up).
_RESOLVER = ThreadPoolExecutor(max_workers=32, thread_name_prefix="socketkit-exporter-dns")


class ProbeFailed(Exception):
    """Why a probe failed (logged; the probe's probe_success is 0)."""


class Probe:
    """One probe's registry, its clock, and the metrics every prober sets."""

    def __init__(self, timeout: float) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.start = time.monotonic()
        self.deadline = self.start + timeout

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ProbeFailed("timed out")
        return left

    def gauge(self, name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> None:
        g = Gauge(name, doc, list(labels or {}), registry=self.registry)
        (g.labels(**labels) if labels else g).set(value)


def fnv32a(ip: str) -> float:
    """blackbox_exporter's probe_ip_addr_hash: FNV-1a (32 bit) of the
    address's bytes (4 for IPv4, 16 for IPv6)."""
    h = 0x811C9DC5
    for b in ipaddress.ip_address(ip).packed:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return float(h)


def resolve(p: Probe, host: str, spec: _Addressing) -> str:
    """blackbox_exporter's chooseProtocol: an address of the preferred
    family, else (with ip_protocol_fallback) of the other; the lookup time
    is probe_dns_lookup_time_seconds."""
    t0 = time.monotonic()
    try:
        literal: str | None = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        literal = None
    if literal is not None:
        addrs = [literal]
    else:
        fut = _RESOLVER.submit(socket.getaddrinfo, host, None, 0, socket.SOCK_STREAM)
        try:
            infos = fut.result(timeout=p.left())
        except FutureTimeout:
            raise ProbeFailed(f"resolving {host} timed out") from None
        except OSError as e:
            raise ProbeFailed(f"resolving {host}: {e.strerror or e}") from None
        addrs = [str(i[4][0]) for i in infos]
    p.gauge(
        "probe_dns_lookup_time_seconds",
        "Returns the time taken for probe dns lookup in seconds",
        time.monotonic() - t0,
    )
    want6 = spec.preferred_ip_protocol == "ip6"
    preferred = [a for a in addrs if (":" in a) == want6]
    chosen = preferred or (addrs if spec.ip_protocol_fallback else [])
    if not chosen:
        raise ProbeFailed(f"{host} has no {spec.preferred_ip_protocol} address")
    ip = chosen[0]
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


def tls_metrics(p: Probe, info: socketkit.TlsInfo | None) -> None:
    if info is None:
        return
    version = info.version.replace("TLSv", "TLS ")  # blackbox writes "TLS 1.3"
    p.gauge(
        "probe_tls_version_info", "Returns the TLS version used or NaN when unknown", 1, {"version": version}
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
                "subjectalternative": ",".join(leaf.sans),
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


def _expect(
    p: Probe, client: socketkit.TcpClient, pattern: re.Pattern[bytes], buf: bytearray
) -> re.Match[bytes]:
    """Read lines until one matches (blackbox matches line by line)."""
    while True:
        while b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            buf[:] = rest
            m = pattern.search(line.rstrip(b"\r"))
            if m:
                return m
        client.settimeout(p.left())
        try:
            chunk = client.recv(65536)
        except OSError as e:
            raise _RegexFailed(f"no line matching {pattern.pattern!r}: {e}") from None
        if not chunk:
            if buf:
                m = pattern.search(bytes(buf))
                buf.clear()
                if m:
                    return m
            raise _RegexFailed(f"closed before a line matched {pattern.pattern!r}")
        buf += chunk
        if len(buf) > 1 << 20:
            raise _RegexFailed("a line longer than 1 MiB")


class _RegexFailed(ProbeFailed):
    pass


def probe_tcp(p: Probe, host: str, port: int, spec: TcpSpec) -> None:
    regex = Gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex", registry=p.registry)
    ip = resolve(p, host, spec)
    tls = tls_config(spec.tls_config, host)
    try:
        client = socketkit.TcpClient(
            (ip, port), timeout=p.left(), source_address=_source(spec), tls=tls if spec.tls else None
        )
    except OSError as e:
        raise ProbeFailed(f"connect to {ip}:{port}: {e}") from None
    try:
        if spec.tls:
            tls_metrics(p, client.tls_info())
        buf = bytearray()
        match: re.Match[bytes] | None = None
        for step in spec.query_response:
            if step.expect is not None:
                try:
                    match = _expect(p, client, step.expect, buf)
                except _RegexFailed:
                    regex.set(1)
                    raise
            if step.send is not None:
                client.settimeout(p.left())
                client.sendall(_expand(step.send, match) + b"\n")
            if step.starttls:
                client.settimeout(p.left())
                client.start_tls(tls)
                tls_metrics(p, client.tls_info())
    except OSError as e:
        raise ProbeFailed(str(e)) from None
    finally:
        client.close()


def probe_udp(p: Probe, host: str, port: int, spec: UdpSpec) -> None:
    ip = resolve(p, host, spec)
    regex = "probe_failed_due_to_regex", "Indicates if probe failed due to regex"
    tries = spec.retries + 1
    try:
        bind = _source(spec) or (("::" if ":" in ip else "0.0.0.0"), 0)
        with socketkit.UdpSocket(bind, connect=(ip, port)) as s:
            t0 = time.monotonic()
            reply = s.request(spec.payload, timeout=p.left() / tries, retries=spec.retries)
            p.gauge(
                "probe_udp_reply_seconds",
                "Time from the first datagram sent to the reply",
                time.monotonic() - t0,
            )
    except OSError as e:
        if spec.expect is not None:
            p.gauge(*regex, 0.0)
        raise ProbeFailed(f"udp {ip}:{port}: {e}") from None
    p.gauge("probe_udp_reply_bytes", "Size of the reply datagram", len(reply))
    if spec.expect is not None:
        matched = spec.expect.search(reply) is not None
        p.gauge(*regex, 0.0 if matched else 1.0)
        if not matched:
            raise ProbeFailed(f"reply does not match {spec.expect.pattern!r}")


def probe_tcping(p: Probe, host: str, port: int, spec: TcpingSpec) -> None:
    ip = resolve(p, host, spec)
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
    stats = socketkit.tcping(
        ip, port, count=spec.count, interval=spec.interval, timeout=per, deadline=deadline, **extra
    )
    p.gauge("probe_tcping_packets_sent", "Handshakes attempted", stats.sent)
    p.gauge("probe_tcping_packets_received", "Handshakes completed", stats.received)
    p.gauge("probe_tcping_loss_ratio", "Handshakes lost, 0-1", stats.loss)
    g = Gauge("probe_tcping_rtt_seconds", "Handshake time statistics", ["stat"], registry=p.registry)
    for name in ("min", "avg", "max", "stdev", "median", "p95", "jitter"):
        v = getattr(stats, name)
        if v is not None:
            g.labels(stat=name).set(v / 1000)
    h = Histogram(
        "probe_tcping_rtt_histogram_seconds", "Handshake times", buckets=spec.buckets, registry=p.registry
    )
    for rtt in stats.rtts:
        h.observe(rtt / 1000)
    if not stats.received:
        raise ProbeFailed(f"no handshake completed ({stats.errors[-1] if stats.errors else 'none sent'})")


_PROBERS: dict[str, Callable[..., None]] = {
    "tcp": lambda p, h, port, m: probe_tcp(p, h, port, m.tcp),
    "udp": lambda p, h, port, m: probe_udp(p, h, port, m.udp),
    "tcping": lambda p, h, port, m: probe_tcping(p, h, port, m.tcping),
}


def run_probe(module: Module, host: str, port: int, timeout: float) -> tuple[CollectorRegistry, bool, str]:
    """Probe ``host:port`` as ``module`` says within ``timeout`` seconds:
    the registry to expose, success, and why it failed ("" on success)."""
    p = Probe(timeout)
    why = ""
    try:
        _PROBERS[module.prober](p, host, port, module)
    except ProbeFailed as e:
        why = str(e)
    except (OSError, ValueError) as e:
        why = f"{type(e).__name__}: {e}"
    ok = not why
    p.gauge("probe_success", "Displays whether or not the probe was a success", 1.0 if ok else 0.0)
    p.gauge(
        "probe_duration_seconds",
        "Returns how long the probe took to complete in seconds",
        time.monotonic() - p.start,
    )
    return p.registry, ok, why
