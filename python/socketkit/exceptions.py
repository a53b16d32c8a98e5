"""socketkit's exception hierarchy.

Every class is a subclass of :class:`socketkit.Error` (itself an
:class:`OSError`) *and* of the builtin that existing socket code already
catches, so ``except socket.timeout``, ``except ConnectionRefusedError``,
``except socket.gaierror`` and ``except OSError`` keep working unchanged.

Attributes set when known:

``errno``, ``strerror``
    as on every :class:`OSError`.
``phase``
    what the call was doing: ``"resolve"``, ``"connect"``, ``"bind"``,
    ``"send"``, ``"recv"``, ``"accept"``, ``"option"`` or ``"tls"``.
``address``
    the peer or local address involved, a ``(host, port)`` tuple like every
    address socketkit returns.
``host``
    for :class:`ResolveError`: the name that did not resolve.
``option``
    for an option the platform lacks: its name.
``attempts``
    for a connect, every address tried: a list of
    ``((host, port), errno, message)``.
``bytes_sent``
    for a failed ``sendall``/``sendfile``: how many bytes went out first.
``partial``
    for :class:`ConnectionClosedError`: the bytes that arrived before EOF.
``targets``
    for the :class:`TimeoutError` of ``wait_for``: the targets still down.
``verify_error``
    for :class:`CertificateError`: the short reason the peer's certificate
    failed verification (``"certificate expired"``, ``"hostname
    mismatch"``, ``"unknown issuer"``, ``"self-signed"``...).
"""

from __future__ import annotations

import builtins
import socket
import ssl

__all__ = [
    "AddressInUseError",
    "BrokenPipeError",
    "CertificateError",
    "ConnectionAbortedError",
    "ConnectionClosedError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "DialogueError",
    "Error",
    "LimitExceededError",
    "ResolveError",
    "TimeoutError",
    "TlsError",
]


class Error(OSError):
    """Base class of every socketkit error; an :class:`OSError`."""

    phase: str | None = None
    address: tuple[str, int] | None = None
    option: str | None = None
    attempts: list[tuple[tuple[str, int], int | None, str]] = []  # noqa: RUF012
    bytes_sent: int | None = None


class TimeoutError(Error, builtins.TimeoutError):
    """A deadline passed; also :class:`socket.timeout` / builtin ``TimeoutError``."""


class ConnectionRefusedError(Error, builtins.ConnectionRefusedError):
    """Nothing listens at the address (``ECONNREFUSED``)."""


class ConnectionResetError(Error, builtins.ConnectionResetError):
    """The peer reset the connection (``ECONNRESET``)."""


class ConnectionAbortedError(Error, builtins.ConnectionAbortedError):
    """The connection was aborted on this side (``ECONNABORTED``)."""


class BrokenPipeError(Error, builtins.BrokenPipeError):
    """Writing to a connection the peer has closed (``EPIPE``)."""


class ConnectionClosedError(Error, builtins.ConnectionError):
    """The peer closed the connection before ``recv_exact``/``recv_until``
    finished. ``partial`` holds the bytes that did arrive."""

    partial: bytes = b""


class DialogueError(Error):
    """A step of ``TcpClient.run_steps`` did not pass: ``failed_step`` is its
    index (0-based) and ``received`` what arrived during it (the message
    says why: no match before the timeout, the peer closed, ...)."""

    failed_step: int | None = None
    received: bytes = b""


class AddressInUseError(Error):
    """The local address is already taken (``EADDRINUSE``)."""


class ResolveError(Error, socket.gaierror):
    """A host name could not be resolved; also :class:`socket.gaierror`,
    with ``errno`` set to the ``EAI_*`` code and ``host`` to the name."""

    host: str | None = None


class LimitExceededError(Error):
    """A line, message or frame grew past its bound (``max_size``,
    ``max_message``)."""


class TlsError(Error, ssl.SSLError):
    """The TLS handshake (or a TLS record after it) failed: an alert from
    the peer, a protocol error, a peer that closed mid-handshake. Also an
    :class:`ssl.SSLError`, so ``except ssl.SSLError`` keeps working.
    ``phase`` is ``"tls"``; ``verify_error`` is None but on
    :class:`CertificateError`."""

    verify_error: str | None = None


class CertificateError(TlsError, ssl.SSLCertVerificationError):
    """The peer's certificate failed verification (with ``verify=True``).
    ``verify_error`` (also ``verify_message``, the stdlib's name) is the
    short reason; also an :class:`ssl.SSLCertVerificationError`."""
