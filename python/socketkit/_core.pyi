"""Type stubs for socketkit's compiled core (checked by mypy.stubtest)."""

import os
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Literal, Self, TypedDict, final

from typing_extensions import Buffer, Unpack, disjoint_base

from socketkit.tls import TlsInfo

__all__ = [
    "DEFAULTS",
    "Keepalive",
    "LineIterator",
    "PingIter",
    "PingStream",
    "ProbeIter",
    "ServiceIter",
    "TcpClient",
    "TcpOptions",
    "TcpServer",
    "TlsConfig",
    "UdpClient",
    "UdpOptions",
    "UdpServer",
    "UdpSocket",
    "__version__",
]

__version__: Final[str]
#: Every default of the core (src/defaults.rs), by name.
DEFAULTS: Final[dict[str, Any]]

_Address = tuple[str, int] | str
_Path = str | os.PathLike[str]

@final
class TlsConfig:
    """TLS settings for ``tls=``: verification, trust, client certificate,
    SNI name, versions, ALPN, client CA (servers)."""

    def __new__(
        cls,
        *,
        verify: bool = True,
        ca_file: _Path | None = None,
        cert_file: _Path | None = None,
        key_file: _Path | None = None,
        server_hostname: str | None = None,
        min_version: str | None = None,
        max_version: str | None = None,
        alpn: Sequence[str] | str | None = None,
        client_ca_file: _Path | None = None,
    ) -> TlsConfig: ...
    @property
    def verify(self) -> bool: ...
    @property
    def ca_file(self) -> str | None: ...
    @property
    def cert_file(self) -> str | None: ...
    @property
    def key_file(self) -> str | None: ...
    @property
    def server_hostname(self) -> str | None: ...
    @property
    def min_version(self) -> str | None: ...
    @property
    def max_version(self) -> str | None: ...
    @property
    def alpn(self) -> tuple[str, ...] | None: ...
    @property
    def client_ca_file(self) -> str | None: ...
    def __getnewargs_ex__(self) -> tuple[tuple[()], dict[str, Any]]: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

_Tls = bool | TlsConfig | None

@final
class Keepalive:
    """TCP keepalive timers, in seconds."""

    def __new__(
        cls, idle: float | None = None, interval: float | None = None, retries: int | None = None
    ) -> Keepalive: ...
    @property
    def idle(self) -> float | None: ...
    @property
    def interval(self) -> float | None: ...
    @property
    def retries(self) -> int | None: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

# BEGIN generated: options (src/options/table.rs; SOCKETKIT_REGEN=1 cargo test docgen)
class TcpOptions(TypedDict, total=False):
    """Socket options of a TCP socket: the ``**options`` of TcpClient, TcpServer and TcpServer.echo."""

    nodelay: bool
    keepalive: bool | Keepalive
    linger: float | None
    user_timeout: float
    recv_buffer: int
    send_buffer: int
    reuse_address: bool
    reuse_port: bool
    ttl: int
    tos: int
    only_v6: bool
    bind_device: str

class UdpOptions(TypedDict, total=False):
    """Socket options of a UDP socket: the ``**options`` of UdpSocket, UdpClient, UdpServer and UdpServer.echo."""

    recv_buffer: int
    send_buffer: int
    reuse_address: bool
    reuse_port: bool
    ttl: int
    tos: int
    only_v6: bool
    bind_device: str
    broadcast: bool
    multicast_ttl: int
    multicast_loop: bool

# END generated: options

@final
class TcpClient:
    """A connected TCP socket."""

    def __new__(
        cls,
        address: _Address,
        *,
        timeout: float | None = None,
        source_address: _Address | None = None,
        tls: _Tls = None,
        family: str | None = None,
        **options: Unpack[TcpOptions],
    ) -> TcpClient: ...
    @classmethod
    def from_socket(cls, sock: socket.socket) -> TcpClient: ...
    def start_tls(self, tls: bool | TlsConfig | None = True, *, starttls: str | None = None) -> None: ...
    def run_steps(
        self, steps: Iterable[Any], *, tls: bool | TlsConfig | None = True
    ) -> tuple[bytes | None, ...] | None: ...
    def tls_info(self) -> TlsInfo | None: ...
    def detach(self) -> socket.socket: ...
    def send(self, data: Buffer) -> int: ...
    def sendall(self, data: Buffer) -> None: ...
    def recv(self, bufsize: int = 65536) -> bytes: ...
    def recv_into(self, buffer: Buffer, nbytes: int = 0) -> int: ...
    def recv_exact(self, n: int) -> bytes: ...
    def recv_until(self, delimiter: bytes, max_size: int = 65536) -> bytes: ...
    def recv_line(self, max_size: int = 65536) -> bytes: ...
    def lines(self, max_size: int = 65536) -> LineIterator: ...
    def request(
        self, data: Buffer, *, until: bytes | None = None, exact: int | None = None, max_size: int = 65536
    ) -> bytes: ...
    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int: ...
    def shutdown(self, how: str | int) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def settimeout(self, value: float | None) -> None: ...
    def gettimeout(self) -> float | None: ...
    @property
    def local_address(self) -> tuple[str, int]: ...
    @property
    def peer_address(self) -> tuple[str, int]: ...
    def fileno(self) -> int: ...
    def options(self) -> dict[str, Any]: ...
    def tcp_info(self) -> dict[str, Any]: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> None: ...

@final
class LineIterator:
    """Iterator over the lines of a TcpClient."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> bytes: ...

@disjoint_base
class UdpSocket:
    """A UDP socket."""

    def __new__(
        cls,
        bind: _Address | None = None,
        *,
        connect: _Address | None = None,
        timeout: float | None = None,
        **options: Unpack[UdpOptions],
    ) -> Self: ...
    def sendto(self, data: Buffer, address: _Address) -> int: ...
    def recvfrom(self, bufsize: int = 65536) -> tuple[bytes, tuple[str, int]]: ...
    def recvfrom_into(self, buffer: Buffer, nbytes: int = 0) -> tuple[int, tuple[str, int]]: ...
    def send(self, data: Buffer) -> int: ...
    def recv(self, bufsize: int = 65536) -> bytes: ...
    def send_many(self, messages: Iterable[tuple[Buffer, _Address] | Buffer]) -> int: ...
    def recv_many(
        self, max_messages: int = 64, bufsize: int = 65536
    ) -> list[tuple[bytes, tuple[str, int]]]: ...
    def connect(self, address: _Address) -> None: ...
    def request(
        self,
        data: Buffer,
        address: _Address | None = None,
        *,
        timeout: float = 1.0,
        retries: int = 2,
        bufsize: int = 65536,
    ) -> bytes: ...
    def join_multicast(self, group: str, interface: str | int | None = None) -> None: ...
    def leave_multicast(self, group: str, interface: str | int | None = None) -> None: ...
    def settimeout(self, value: float | None) -> None: ...
    def gettimeout(self) -> float | None: ...
    @property
    def local_address(self) -> tuple[str, int] | None: ...
    @property
    def peer_address(self) -> tuple[str, int] | None: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def options(self) -> dict[str, Any]: ...
    def detach(self) -> socket.socket: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> None: ...

@final
class UdpClient(UdpSocket):
    """A connected UDP socket."""

    def __new__(  # type: ignore[misc]
        cls,
        address: _Address,
        *,
        bind: _Address | None = None,
        timeout: float | None = None,
        **options: Unpack[UdpOptions],
    ) -> UdpClient: ...

@final
class TcpServer:
    """A TCP server: accept loop, handler(conn) per thread, or on_message on a Rust event loop."""

    def __new__(
        cls,
        address: _Address | None = ("127.0.0.1", 0),
        handler: Callable[[TcpClient], object] | None = None,
        *,
        on_message: Callable[[bytes], bytes | bytearray | memoryview | None] | None = None,
        framing: Literal["line", "length", "raw"] | None = "line",
        max_message: int | None = 1048576,
        backlog: int | None = 1024,
        max_connections: int | None = 1024,
        idle_timeout: float | None = None,
        tls: _Tls = None,
        **options: Unpack[TcpOptions],
    ) -> TcpServer: ...
    @classmethod
    def echo(
        cls,
        address: _Address | None = ("127.0.0.1", 0),
        *,
        backlog: int | None = 1024,
        max_connections: int | None = 1024,
        idle_timeout: float | None = None,
        tls: _Tls = None,
        **options: Unpack[TcpOptions],
    ) -> TcpServer: ...
    def start(self) -> None: ...
    def serve_forever(self) -> None: ...
    def stop(self, timeout: float | None = 5.0) -> None: ...
    def accept(self, timeout: float | None = None) -> tuple[TcpClient, tuple[str, int]]: ...
    @property
    def address(self) -> tuple[str, int]: ...
    @property
    def stats(self) -> dict[str, int]: ...
    @property
    def running(self) -> bool: ...
    def fileno(self) -> int: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> None: ...

@final
class UdpServer:
    """A UDP server: handler(data, peer) -> reply or None, per datagram."""

    def __new__(
        cls,
        address: _Address | None = ("127.0.0.1", 0),
        handler: Callable[[bytes, tuple[str, int]], bytes | bytearray | memoryview | None] | None = None,
        **options: Unpack[UdpOptions],
    ) -> UdpServer: ...
    @classmethod
    def echo(
        cls, address: _Address | None = ("127.0.0.1", 0), **options: Unpack[UdpOptions]
    ) -> UdpServer: ...
    def start(self) -> None: ...
    def serve_forever(self) -> None: ...
    def stop(self, timeout: float | None = 5.0) -> None: ...
    @property
    def address(self) -> tuple[str, int]: ...
    @property
    def stats(self) -> dict[str, int]: ...
    @property
    def running(self) -> bool: ...
    def fileno(self) -> int: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> None: ...

# Probes. The public functions are in socketkit.probes; these return plain
# result tuples (host, address, port, proto, state, rtt_ms, error, timings,
# captures, failed_step, received, tls): CheckResult's fields.

_S = str | None
_Captures = tuple[bytes | None, ...] | None
_F = float | None
_Timings = dict[str, float | None]
_Result = tuple[str, _S, int, str, str, _F, _S, _Timings, _Captures, int | None, bytes | None, TlsInfo | None]
_Family = str | None
_Source = tuple[str, int] | str | None
_Target = _Address
_Ports = str | int | range | Iterable[int | str]
_Progress = Callable[[int, int], Any] | None

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
def _wait_for(
    targets: _Target | Iterable[_Target],
    port: int | None,
    *,
    timeout: float | None,
    interval: float,
    send: Buffer | None,
    expect: Buffer | None,
) -> float: ...
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
