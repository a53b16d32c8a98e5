"""Send/expect dialogues: the steps a service check runs after the connect.

``steps=[Send(b"PING\\r\\n"), Expect(b"+PONG")]`` on :func:`socketkit.check`,
``check_many``, ``check_iter``, ``wait_for`` and ``banner``; or
``service="redis"`` for the ready steps in :data:`SERVICES`.

- :class:`Send` sends its bytes as given: nothing is appended (no newline).
- :class:`Expect` reads until ``pattern`` shows up in what arrived since the
  previous match: as exact bytes (``pattern in received``), or with
  ``regex=True`` as a regular expression searched in at most 64 KiB. The
  regex flavour is Rust's ``regex`` crate on bytes: Python's ``re`` syntax
  without look-around (``(?=``, ``(?<=``...) and backreferences (``\\1``),
  which it refuses (it matches in linear time); ``\\d``/``\\w`` are
  Unicode-aware unless ``(?-u)`` and ``.`` skips ``\\n`` unless ``(?s)``, as in
  ``re``. The groups of the last regex that matched come back as the
  result's ``captures``. ``timeout`` bounds this step (seconds), inside the
  check's own timeout. A peer that closes fails the step at once.
- :class:`StartTls` upgrades the connection to TLS (after the plaintext
  exchange of a preset: ``"smtp"``, ``"imap"``, ``"pop3"``, ``"ftp"``,
  ``"postgres"``); the check's ``tls=`` configures it (default: ``True``).

A check whose steps all pass is ``open``; otherwise its state is ``"error"``,
``failed_step`` is the 0-based index of the step that failed, ``received``
the bytes that arrived during it, and ``error`` says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from socketkit import _core

__all__ = ["SERVICES", "STARTTLS", "Expect", "Send", "StartTls", "Step"]

#: The STARTTLS presets ``starttls=`` takes.
STARTTLS = ("smtp", "imap", "pop3", "ftp", "postgres")


def _bytes(what: str, v: object) -> bytes:
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v)
    raise TypeError(f"{what} must be bytes or str, got {type(v).__name__}")


@dataclass(frozen=True)
class Send:
    """Send ``data`` (bytes; a str is sent as UTF-8), exactly as given."""

    data: bytes
    _kind: ClassVar[str] = "send"

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _bytes("Send.data", self.data))


@dataclass(frozen=True)
class Expect:
    """Wait until ``pattern`` arrives: exact bytes, or a regex with
    ``regex=True``; ``timeout`` (seconds) bounds this step."""

    pattern: bytes
    regex: bool = field(default=False, kw_only=True)
    timeout: float | None = field(default=None, kw_only=True)
    _kind: ClassVar[str] = "expect"

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _bytes("Expect.pattern", self.pattern))


@dataclass(frozen=True)
class StartTls:
    """Upgrade to TLS here, after the plaintext exchange of ``starttls``
    (a preset name) when given."""

    starttls: str | None = None
    _kind: ClassVar[str] = "starttls"

    def __post_init__(self) -> None:
        if self.starttls is not None and self.starttls.lower() not in (*STARTTLS, "postgresql"):
            raise ValueError(
                f"starttls: unknown STARTTLS protocol {self.starttls!r}; one of {', '.join(STARTTLS)}"
            )


Step = Send | Expect | StartTls


def _step(t: tuple[object, ...]) -> Step:
    kind = t[0]
    if kind == "send":
        return Send(t[1])  # type: ignore[arg-type]
    if kind == "expect":
        return Expect(t[1], regex=bool(t[2]), timeout=t[3])  # type: ignore[arg-type]
    return StartTls(t[1])  # type: ignore[arg-type]


def _services() -> Mapping[str, tuple[Step, ...]]:
    # HTTP's Host header names the target: the table shows "{host}" where a
    # check with service="http" sends the host it was given.
    return MappingProxyType(
        {
            name: tuple(_step(t) for t in _core._service_steps(name, "{host}"))
            for name in _core._service_names()
        }
    )


#: Ready steps for common services, by name: what ``service=NAME`` runs.
SERVICES: Mapping[str, tuple[Step, ...]] = _services()
