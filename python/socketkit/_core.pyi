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
        max_unsent: int | None = 65536,
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
