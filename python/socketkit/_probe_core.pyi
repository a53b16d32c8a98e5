"""Type stubs for socketkit._probe_core, the checks part of the compiled core
(check, scan, tcping, wait_for, service and TLS checks: private helpers of
socketkit.probes, ping_probes, service and tls_probes; a submodule of
``_core``; checked by mypy.stubtest)."""

from collections.abc import Iterable
from typing import Any, Self, final

from typing_extensions import Buffer

from socketkit._core import _Family, _Ports, _Progress, _Result, _Source, _Target, _Tls
from socketkit.tls import TlsInfo

__all__ = [
    "PingIter",
    "PingStream",
    "ProbeIter",
    "ServiceIter",
    "_banner",
    "_check",
    "_check_iter",
    "_check_many",
    "_fd_budget",
    "_parse_ports",
    "_parse_target",
    "_scan",
    "_scan_iter",
    "_service_banner",
    "_service_check",
    "_service_check_iter",
    "_service_check_many",
    "_service_names",
    "_service_steps",
    "_tcping",
    "_tcping_iter",
    "_tcping_stream",
    "_tls_check",
    "_tls_check_iter",
    "_tls_check_many",
    "_udp_probe",
    "_wait_until",
]

@final
class ProbeIter:
    """Results of check_iter/scan_iter as they complete."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> _Result: ...
    @property
    def total(self) -> int: ...
    def close(self) -> None: ...

def _check(
    target: _Target,
    port: int | None = None,
    *,
    timeout: float | None = None,
    family: _Family = None,
    source_address: _Source = None,
) -> _Result: ...
def _check_many(
    targets: Iterable[_Target],
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    progress: _Progress = None,
    family: _Family = None,
    source_address: _Source = None,
    each_address: bool = False,
) -> list[_Result]: ...
def _check_iter(
    targets: Iterable[_Target],
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    family: _Family = None,
    source_address: _Source = None,
    each_address: bool = False,
) -> ProbeIter: ...
def _scan(
    hosts: str | Iterable[str],
    ports: _Ports,
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    progress: _Progress = None,
    family: _Family = None,
    source_address: _Source = None,
) -> list[_Result]: ...
def _scan_iter(
    hosts: str | Iterable[str],
    ports: _Ports,
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    family: _Family = None,
    source_address: _Source = None,
) -> ProbeIter: ...

# Service checks (connect + TLS/STARTTLS + dialogue on a pool of threads).

@final
class ServiceIter:
    """Results of a service-check check_iter as they finish."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> Any: ...
    @property
    def total(self) -> int: ...
    def close(self) -> None: ...

def _service_check(
    target: _Target,
    port: int | None = None,
    *,
    timeout: float | None = None,
    family: _Family = None,
    source_address: _Source = None,
    steps: Iterable[Any] | None = None,
    service: str | None = None,
    tls: _Tls = None,
    starttls: str | None = None,
) -> _Result: ...
def _service_banner(
    target: _Target,
    port: int | None = None,
    *,
    max_bytes: int,
    timeout: float | None = None,
    family: _Family = None,
    source_address: _Source = None,
    steps: Iterable[Any] | None = None,
    tls: _Tls = None,
    starttls: str | None = None,
) -> tuple[_Result, bytes | None]: ...
def _service_check_many(
    targets: Iterable[_Target],
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    progress: _Progress = None,
    family: _Family = None,
    source_address: _Source = None,
    each_address: bool = False,
    steps: Iterable[Any] | None = None,
    service: str | None = None,
    tls: _Tls = None,
    starttls: str | None = None,
) -> list[_Result]: ...
def _service_check_iter(
    targets: Iterable[_Target],
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    family: _Family = None,
    source_address: _Source = None,
    each_address: bool = False,
    steps: Iterable[Any] | None = None,
    service: str | None = None,
    tls: _Tls = None,
    starttls: str | None = None,
) -> ServiceIter: ...
def _service_steps(name: str, host: str) -> list[tuple[Any, ...]]: ...

# TLS checks: (host, address, port, state, tls_info, timings, error).
_TlsCheck = tuple[str, str | None, int, str, TlsInfo | None, dict[str, float | None], str | None]

def _tls_check(
    target: _Target,
    port: int | None = None,
    *,
    timeout: float | None = None,
    tls: _Tls = None,
    starttls: str | None = None,
    family: _Family = None,
    source_address: _Source = None,
) -> _TlsCheck: ...
def _tls_check_many(
    targets: Iterable[_Target],
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    progress: _Progress = None,
    tls: _Tls = None,
    starttls: str | None = None,
    family: _Family = None,
    source_address: _Source = None,
) -> list[_TlsCheck]: ...
def _tls_check_iter(
    targets: Iterable[_Target],
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    tls: _Tls = None,
    starttls: str | None = None,
    family: _Family = None,
    source_address: _Source = None,
) -> ServiceIter: ...
def _service_names() -> list[str]: ...
def _tcping(
    target: _Target,
    port: int | None,
    *,
    count: int,
    interval: float,
    timeout: float | None,
    family: _Family = None,
    source_address: _Source = None,
) -> tuple[str, str, int, list[float | None], list[str | None]]: ...

# One ping: (seq, host, address, port, state, rtt_ms, error); address is
# None while the name does not resolve.
_Ping = tuple[int, str, str | None, int, str, float | None, str | None]

@final
class PingIter:
    """tcping one ping at a time, each started interval seconds after the last."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> _Ping: ...
    def close(self) -> None: ...

def _tcping_iter(
    target: _Target,
    port: int | None = None,
    *,
    count: int = 4,
    interval: float = 1.0,
    timeout: float | None = 1.0,
    family: _Family = None,
    source_address: _Source = None,
) -> PingIter: ...

# A timed ping: (seq, time (Unix, at its start), host, address, port, state, rtt_ms, error).
_TimedPing = tuple[int, float, str, str | None, int, str, float | None, str | None]

@final
class PingStream:
    def __iter__(self) -> Self: ...
    def __next__(self) -> _TimedPing: ...
    def close(self) -> None: ...

# fmt: off
def _tcping_stream(target: _Target, port: int | None = None, *, count: int | None, interval: float,
                   timeout: float | None, deadline: float | None = None, resolve_every: int | None = None,
                   family: _Family = None, source_address: _Source = None, strict: bool = True) -> PingStream: ...
def _wait_until(targets: _Target | Iterable[_Target], port: int | None, *, timeout: float | None,
                interval: float, send: bytes | None, expect: bytes | None, state: str, delay: float,
                connect_timeout: float | None, drain_ignore: Iterable[str]) -> float: ...
# fmt: on
def _banner(
    target: _Target,
    port: int | None,
    *,
    send: Buffer | None,
    timeout: float | None,
    max_bytes: int,
    family: _Family = None,
    source_address: _Source = None,
) -> bytes: ...
def _udp_probe(
    target: _Target,
    port: int | None,
    payload: Buffer | None,
    *,
    timeout: float | None,
    retries: int,
    family: _Family = None,
    source_address: _Source = None,
) -> _Result: ...
def _parse_ports(ports: _Ports) -> list[int]: ...
def _parse_target(target: _Target) -> tuple[str, int]: ...
def _fd_budget() -> int: ...
