"""Type stubs for socketkit._aio_core, the aio part of the compiled core
(a submodule of ``_core``; checked by mypy.stubtest)."""

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Self, final

from typing_extensions import Buffer, Unpack

from socketkit._core import (
    TcpOptions,
    TlsConfig,
    UdpOptions,
    _Address,
    _Ports,
    _Progress,
    _Result,
    _Target,
    _Tls,
)
from socketkit.tls import TlsInfo

__all__ = [
    "AioResults",
    "AsyncLineIterator",
    "AsyncTcpClient",
    "AsyncUdpSocket",
    "_aio_banner",
    "_aio_bench_bridge",
    "_aio_call",
    "_aio_check",
    "_aio_check_many",
    "_aio_scan",
    "_aio_udp_probe",
    "_aio_wait_for",
]

@final
class AsyncTcpClient:
    """A connected TCP client for asyncio: TcpClient's methods as awaitables."""

    @classmethod
    def connect(
        cls,
        address: _Address,
        *,
        timeout: float | None = None,
        source_address: _Address | None = None,
        tls: _Tls = None,
        family: str | None = None,
        **options: Unpack[TcpOptions],
    ) -> Awaitable[AsyncTcpClient]: ...
    @classmethod
    def from_socket(cls, sock: socket.socket) -> AsyncTcpClient: ...
    def start_tls(
        self, tls: bool | TlsConfig | None = True, *, starttls: str | None = None
    ) -> Awaitable[None]: ...
    def run_steps(
        self, steps: Iterable[Any], *, tls: bool | TlsConfig | None = True
    ) -> Awaitable[tuple[bytes | None, ...] | None]: ...
    def tls_info(self) -> TlsInfo | None: ...
    def tcp_info(self) -> dict[str, Any]: ...
    def detach(self) -> socket.socket: ...
    def send(self, data: Buffer) -> Awaitable[int]: ...
    def sendall(self, data: Buffer) -> Awaitable[None]: ...
    def recv(self, bufsize: int = 65536) -> Awaitable[bytes]: ...
    def recv_into(self, buffer: Buffer, nbytes: int = 0) -> Awaitable[int]: ...
    def recv_exact(self, n: int) -> Awaitable[bytes]: ...
    def recv_until(self, delimiter: bytes, max_size: int = 65536) -> Awaitable[bytes]: ...
    def recv_line(self, max_size: int = 65536) -> Awaitable[bytes]: ...
    def lines(self, max_size: int = 65536) -> AsyncLineIterator: ...
    def request(
        self, data: Buffer, *, until: bytes | None = None, exact: int | None = None, max_size: int = 65536
    ) -> Awaitable[bytes]: ...
    def shutdown(self, how: str | int) -> None: ...
    def close(self) -> None: ...
    def aclose(self) -> Awaitable[None]: ...
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
    def __aenter__(self) -> Awaitable[Self]: ...
    def __aexit__(self, *_exc: object) -> Awaitable[bool]: ...

@final
class AsyncLineIterator:
    """Async iterator over the lines of an AsyncTcpClient."""

    def __aiter__(self) -> Self: ...
    def __anext__(self) -> Awaitable[bytes]: ...

@final
class AsyncUdpSocket:
    """A UDP socket for asyncio: UdpSocket's calls as awaitables."""

    @classmethod
    def create(
        cls,
        bind: _Address | None = None,
        *,
        connect: _Address | None = None,
        timeout: float | None = None,
        **options: Unpack[UdpOptions],
    ) -> Awaitable[AsyncUdpSocket]: ...
    def sendto(self, data: Buffer, address: _Address) -> Awaitable[int]: ...
    def recvfrom(self, bufsize: int = 65536) -> Awaitable[tuple[bytes, tuple[str, int]]]: ...
    def send(self, data: Buffer) -> Awaitable[int]: ...
    def recv(self, bufsize: int = 65536) -> Awaitable[bytes]: ...
    def request(
        self,
        data: Buffer,
        address: _Address | None = None,
        *,
        timeout: float = 1.0,
        retries: int = 2,
        bufsize: int = 65536,
    ) -> Awaitable[bytes]: ...
    def send_many(self, messages: Iterable[tuple[Buffer, _Address] | Buffer]) -> Awaitable[int]: ...
    def recv_many(
        self, max_messages: int = 64, bufsize: int = 65536
    ) -> Awaitable[list[tuple[bytes, tuple[str, int]]]]: ...
    def connect(self, address: _Address) -> Awaitable[None]: ...
    def settimeout(self, value: float | None) -> None: ...
    def gettimeout(self) -> float | None: ...
    @property
    def local_address(self) -> tuple[str, int] | None: ...
    @property
    def peer_address(self) -> tuple[str, int] | None: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    def aclose(self) -> Awaitable[None]: ...
    @property
    def closed(self) -> bool: ...
    def options(self) -> dict[str, Any]: ...
    def __aenter__(self) -> Awaitable[Self]: ...
    def __aexit__(self, *_exc: object) -> Awaitable[bool]: ...

def _aio_call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]: ...
def _aio_bench_bridge(data: bytes) -> Awaitable[bytes]: ...

@final
class AioResults:
    """The finished results of an awaited scan/check_many, taken in chunks."""

    def take(self, n: int) -> list[_Result]: ...
    def __len__(self) -> int: ...

def _aio_scan(
    hosts: str | Iterable[str],
    ports: _Ports,
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    progress: _Progress = None,
    family: str | None = None,
    source_address: _Address | None = None,
) -> Awaitable[AioResults]: ...
def _aio_check(
    target: _Target,
    port: int | None = None,
    *,
    timeout: float | None = None,
    family: str | None = None,
    source_address: _Address | None = None,
) -> Awaitable[AioResults]: ...
def _aio_check_many(
    targets: Iterable[_Target],
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    progress: _Progress = None,
    family: str | None = None,
    source_address: _Address | None = None,
    each_address: bool = False,
) -> Awaitable[AioResults]: ...
def _aio_wait_for(
    targets: _Target | Iterable[_Target],
    port: int | None,
    *,
    timeout: float | None,
    interval: float,
    send: bytes | None,
    expect: bytes | None,
) -> Awaitable[float]: ...
def _aio_banner(
    target: _Target,
    port: int | None,
    *,
    send: bytes | None,
    timeout: float | None,
    max_bytes: int,
    family: str | None = None,
    source_address: _Address | None = None,
) -> Awaitable[bytes]: ...
def _aio_udp_probe(
    target: _Target,
    port: int | None,
    payload: bytes | None,
    *,
    timeout: float | None,
    retries: int,
    family: str | None = None,
    source_address: _Address | None = None,
) -> Awaitable[_Result]: ...
