"""The exporter's configuration: blackbox_exporter's YAML layout, read as
strictly as blackbox_exporter reads it (an unknown key is an error naming
it), so an existing ``blackbox.yml`` tcp module works unchanged and a typo
is not silently ignored.

Supported probers: ``tcp`` (blackbox_exporter's), ``udp`` and ``tcping``
(socketkit's own). Modules of blackbox's other probers (``http``, ``icmp``,
``dns``, ``grpc``) load, so a whole ``blackbox.yml`` can be pointed at, and
a probe of one answers HTTP 400 saying the prober is not supported.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CONFIG",
    "Config",
    "ConfigError",
    "Module",
    "Step",
    "TcpSpec",
    "TcpingSpec",
    "TlsSpec",
    "UdpSpec",
    "config_from_text",
    "load_config",
    "parse_config",
    "parse_duration",
]

#: smokeping_prober's default latency buckets: 50 us doubling, 20 of them.
DEFAULT_BUCKETS = tuple(0.00005 * 2**i for i in range(20))

#: Without --config: a module per socketkit prober.
DEFAULT_CONFIG: dict[str, Any] = {
    "modules": {
        "tcp_connect": {"prober": "tcp", "timeout": "5s"},
        "udp": {"prober": "udp", "timeout": "5s"},
        "tcping": {"prober": "tcping", "timeout": "10s", "tcping": {"count": 5, "interval": "0.2s"}},
    }
}

SUPPORTED = ("tcp", "udp", "tcping")
BLACKBOX_ONLY = ("http", "icmp", "dns", "grpc")


class ConfigError(ValueError):
    """The configuration is not valid; the message says where and why."""


_UNITS = {"y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_UNITS.update({"ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9})
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|y|w|d|h|m|s)")


def parse_duration(value: object, where: str) -> float:
    """A Go/Prometheus duration (``"5s"``, ``"1m30s"``, ``"250ms"``) or a
    number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration such as 5s, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        pos, seconds = 0, 0.0
        for m in _PART.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(text) or not pos:
            raise ConfigError(f"{where}: not a duration: {value!r} (write it as 5s, 1m30s, 250ms)")
    else:
        raise ConfigError(f"{where}: expected a duration such as 5s, got {value!r}")
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ConfigError(f"{where}: a duration must be a finite non-negative time, got {value!r}")
    return seconds


def _mapping(value: object, where: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown field {key!r} (known: {', '.join(allowed)})")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def go_regex(text: str) -> str:
    """Go's RE2 syntax where Python's differs: RE2 lets an anchor repeat
    (blackbox's own example has ``^+OK``), and spells end of text ``\\z``."""
    text = re.sub(r"(?<![\\[])([\^$])\+", r"\1", text)
    text = re.sub(r"(?<![\\[])[\^$][*?]", "", text)
    return re.sub(r"(?<!\\)\\z", r"\\Z", text)


def _regex(value: object, where: str) -> re.Pattern[bytes]:
    text = _str(value, where)
    try:
        return re.compile(go_regex(text).encode())
    except re.error as e:
        raise ConfigError(f"{where}: bad regular expression {text!r}: {e}") from None


@dataclass(frozen=True)
class TlsSpec:
    """blackbox's ``tls_config``, as socketkit's TlsConfig takes it."""

    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    min_version: str | None = None
    max_version: str | None = None


_TLS_VERSIONS = {"TLS12": "1.2", "TLS13": "1.3"}


def _tls(value: object, where: str) -> TlsSpec:
    m = _mapping(
        value,
        where,
        (
            "insecure_skip_verify",
            "ca_file",
            "cert_file",
            "key_file",
            "server_name",
            "min_version",
            "max_version",
        ),
    )
    versions: dict[str, str | None] = {}
    for key in ("min_version", "max_version"):
        v = m.get(key)
        if v is not None and v not in _TLS_VERSIONS:
            raise ConfigError(
                f"{where}.{key}: socketkit speaks TLS12 and TLS13, got {v!r} "
                "(TLS10 and TLS11 are not supported)"
            )
        versions[key] = _TLS_VERSIONS[v] if v is not None else None
    files = {}
    for key in ("ca_file", "cert_file", "key_file", "server_name"):
        files[key] = _str(m[key], f"{where}.{key}") if m.get(key) is not None else None
    return TlsSpec(
        verify=not _bool(m.get("insecure_skip_verify", False), f"{where}.insecure_skip_verify"),
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        server_name=files["server_name"],
        min_version=versions["min_version"],
        max_version=versions["max_version"],
    )


@dataclass(frozen=True)
class Step:
    """One ``query_response`` item: wait for a line matching ``expect``,
    then ``send`` a line, then ``starttls``."""

    expect: re.Pattern[bytes] | None = None
    send: str | None = None
    starttls: bool = False


@dataclass(frozen=True)
class _Addressing:
    preferred_ip_protocol: str = "ip6"  # blackbox_exporter's default
    ip_protocol_fallback: bool = True
    source_ip_address: str | None = None


def _addressing(m: Mapping[str, Any], where: str) -> dict[str, Any]:
    proto = m.get("preferred_ip_protocol", "ip6")
    if proto not in ("ip4", "ip6"):
        raise ConfigError(f"{where}.preferred_ip_protocol: must be ip4 or ip6, got {proto!r}")
    src = m.get("source_ip_address")
    return {
        "preferred_ip_protocol": proto,
        "ip_protocol_fallback": _bool(m.get("ip_protocol_fallback", True), f"{where}.ip_protocol_fallback"),
        "source_ip_address": _str(src, f"{where}.source_ip_address") if src is not None else None,
    }


_ADDRESSING_KEYS = ("preferred_ip_protocol", "ip_protocol_fallback", "source_ip_address")


@dataclass(frozen=True)
class TcpSpec(_Addressing):
    query_response: tuple[Step, ...] = ()
    tls: bool = False
    tls_config: TlsSpec = field(default_factory=TlsSpec)


def _tcp(value: object, where: str) -> TcpSpec:
    m = _mapping(value, where, (*_ADDRESSING_KEYS, "query_response", "tls", "tls_config"))
    steps = []
    qr = m.get("query_response") or []
    if not isinstance(qr, list):
        raise ConfigError(f"{where}.query_response: expected a list, got {type(qr).__name__}")
    for i, item in enumerate(qr):
        w = f"{where}.query_response[{i}]"
        s = _mapping(item, w, ("expect", "send", "starttls"))
        steps.append(
            Step(
                expect=_regex(s["expect"], f"{w}.expect") if s.get("expect") is not None else None,
                send=_str(s["send"], f"{w}.send") if s.get("send") is not None else None,
                starttls=_bool(s.get("starttls", False), f"{w}.starttls"),
            )
        )
    return TcpSpec(
        **_addressing(m, where),
        query_response=tuple(steps),
        tls=_bool(m.get("tls", False), f"{where}.tls"),
        tls_config=_tls(m.get("tls_config"), f"{where}.tls_config"),
    )


@dataclass(frozen=True)
class UdpSpec(_Addressing):
    payload: bytes = b""
    expect: re.Pattern[bytes] | None = None
    retries: int = 2


def _udp(value: object, where: str) -> UdpSpec:
    m = _mapping(value, where, (*_ADDRESSING_KEYS, "payload", "payload_hex", "expect", "retries"))
    if "payload" in m and "payload_hex" in m:
        raise ConfigError(f"{where}: give payload or payload_hex, not both")
    payload = _str(m["payload"], f"{where}.payload").encode() if m.get("payload") is not None else b""
    if m.get("payload_hex") is not None:
        try:
            payload = bytes.fromhex(_str(m["payload_hex"], f"{where}.payload_hex"))
        except ValueError as e:
            raise ConfigError(f"{where}.payload_hex: {e}") from None
    retries = m.get("retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise ConfigError(f"{where}.retries: expected an integer from 0 to 100, got {retries!r}")
    expect = _regex(m["expect"], f"{where}.expect") if m.get("expect") is not None else None
    return UdpSpec(**_addressing(m, where), payload=payload, expect=expect, retries=retries)


@dataclass(frozen=True)
class TcpingSpec(_Addressing):
    count: int = 5
    interval: float = 0.2
    buckets: tuple[float, ...] = DEFAULT_BUCKETS


def _tcping(value: object, where: str) -> TcpingSpec:
    m = _mapping(value, where, (*_ADDRESSING_KEYS, "count", "interval", "buckets"))
    count = m.get("count", 5)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10000:
        raise ConfigError(f"{where}.count: expected an integer from 1 to 10000, got {count!r}")
    buckets = m.get("buckets", list(DEFAULT_BUCKETS))
    if (
        not isinstance(buckets, list)
        or not buckets
        or not all(isinstance(b, int | float) and not isinstance(b, bool) and b > 0 for b in buckets)
        or sorted(buckets) != buckets
    ):
        raise ConfigError(f"{where}.buckets: expected increasing positive seconds, got {buckets!r}")
    return TcpingSpec(
        **_addressing(m, where),
        count=count,
        interval=parse_duration(m.get("interval", "0.2s"), f"{where}.interval"),
        buckets=tuple(float(b) for b in buckets),
    )


@dataclass(frozen=True)
class Module:
    name: str
    prober: str
    timeout: float | None  # None: from the scrape timeout
    tcp: TcpSpec = field(default_factory=TcpSpec)
    udp: UdpSpec = field(default_factory=UdpSpec)
    tcping: TcpingSpec = field(default_factory=TcpingSpec)
    #: The module as the config file gave it (for ``debug=true``).
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def describe(self) -> dict[str, Any]:
        """The module in the config file's layout, with the defaults a
        probe used filled in (``debug=true``'s "Module configuration")."""
        raw = self.raw.get(self.prober) or {}
        spec = getattr(self, self.prober, None)
        section: dict[str, Any] = {}
        if isinstance(spec, _Addressing):
            section = {
                "preferred_ip_protocol": spec.preferred_ip_protocol,
                "ip_protocol_fallback": spec.ip_protocol_fallback,
            }
        section.update(raw)
        doc: dict[str, Any] = {"prober": self.prober, "timeout": self.raw.get("timeout", "0s")}
        doc[self.prober] = section
        return doc


def _module(name: str, value: object) -> Module:
    where = f"modules.{name}"
    m = _mapping(value, where, ("prober", "timeout", *SUPPORTED, *BLACKBOX_ONLY))
    prober = m.get("prober")
    if prober not in (*SUPPORTED, *BLACKBOX_ONLY):
        raise ConfigError(
            f"{where}.prober: unknown prober {prober!r} (socketkit runs {', '.join(SUPPORTED)})"
        )
    timeout = parse_duration(m["timeout"], f"{where}.timeout") if m.get("timeout") is not None else None
    return Module(
        name=name,
        prober=prober,
        timeout=timeout or None,
        tcp=_tcp(m.get("tcp"), f"{where}.tcp"),
        udp=_udp(m.get("udp"), f"{where}.udp"),
        tcping=_tcping(m.get("tcping"), f"{where}.tcping"),
        raw=copy.deepcopy(dict(m)),
    )


@dataclass(frozen=True)
class Config:
    modules: dict[str, Module]
    source: str = "<built-in>"


def parse_config(doc: object, source: str = "<dict>") -> Config:
    """A configuration from its parsed YAML (a dict)."""
    m = _mapping(doc, "config", ("modules",))
    mods = m.get("modules") or {}
    if not isinstance(mods, Mapping):
        raise ConfigError(f"modules: expected a mapping, got {type(mods).__name__}")
    return Config({str(k): _module(str(k), v) for k, v in mods.items()}, source)


def read_config_text(path: str | Path) -> str:
    """A config file's contents; ConfigError naming it when unreadable."""
    try:
        return Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None


def config_from_text(text: str, source: str) -> Config:
    """Check a blackbox_exporter-style YAML document read from ``source``."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None
    try:
        return parse_config(doc or {}, source)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_config(path: str | Path) -> Config:
    """Read and check a blackbox_exporter-style YAML file."""
    return config_from_text(read_config_text(path), str(path))
