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

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from socketkit import _core, _probe_core  # noqa: F401 (_core first: it makes _probe_core)

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
            name: tuple(_step(t) for t in _probe_core._service_steps(name, "{host}"))
            for name in _probe_core._service_names()
        }
    )


#: Ready steps for common services, by name: what ``service=NAME`` runs.
SERVICES: Mapping[str, tuple[Step, ...]] = _services()


def _buffer(name: str, v: object) -> bytes:
    """``wait_for``'s ``send``/``expect``: any bytes-like object, as the core took them."""
    if isinstance(v, str):
        raise TypeError(
            f"{name} must be bytes-like (bytes, bytearray, memoryview), got str: "
            f"encode it first, e.g. {name}.encode()"
        )
    try:
        return memoryview(v).tobytes()  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must be bytes-like (bytes, bytearray, memoryview), got {type(v).__name__} {v!r}"
        ) from None


def _send_expect_steps(send: object, expect: object) -> list[Step]:
    """``wait_for(send=, expect=)`` as steps: the dialogue path reports a
    reply that did not match (the step and the bytes), not a timeout."""
    steps: list[Step] = []
    if send is not None:
        steps.append(Send(_buffer("send", send)))
    if expect is not None:
        steps.append(Expect(_buffer("expect", expect)))
    return steps


#: How many of the last bytes received a message shows.
_SHOWN_BYTES = 200


def _tail(data: bytes | None) -> str:
    """The last bytes received, as a bytes literal for one line of text."""
    data = data or b""
    if len(data) > _SHOWN_BYTES:
        return f"...{data[-_SHOWN_BYTES:]!r} (the last {_SHOWN_BYTES} of {len(data)} bytes)"
    return repr(data)


def _why_down(r: object, steps: tuple[Step, ...] | list[Step]) -> str:
    """Why a check-like result is not up, in words: a reply that did not
    match names the pattern and shows the last bytes that came instead."""
    i = getattr(r, "failed_step", None)
    state = getattr(r, "state", "down")
    # The words the core's wait_for uses for a refused and a silent target.
    error = getattr(r, "error", None) or {
        "closed": os.strerror(errno.ECONNREFUSED),
        "filtered": "timed out",
    }.get(state, state)
    if i is not None and i < len(steps) and isinstance(steps[i], Expect):
        received = getattr(r, "received", None)
        got = f"received {_tail(received)}" if received else f"nothing received ({error})"
        return f"reply did not match {steps[i].pattern!r}: {got}"  # type: ignore[union-attr]
    return str(error)
