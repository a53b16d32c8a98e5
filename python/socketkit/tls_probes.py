"""Certificate and TLS checks: ``tls_check``, ``tls_check_many``,
``tls_check_iter``.

Each connects (``family``, ``source_address`` as for every probe), runs
the STARTTLS exchange when ``starttls`` names one (``"smtp"``, ``"imap"``,
``"pop3"``, ``"ftp"``, ``"postgres"``), and completes the TLS handshake
with ``tls`` (``True``: system roots, SNI = the host; or a
:class:`socketkit.TlsConfig`: ``ca_file``, ``server_hostname``, client
certificate, versions, ALPN). Verification is recorded, not enforced: an
expired, self-signed or wrongly named certificate completes the handshake
and comes back as ``state="invalid"`` with its facts and ``verify_error``.
All in Rust, concurrently, with the GIL released and Ctrl-C working.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from socketkit import _core, _probe_core  # noqa: F401 (_core first: it makes _probe_core)
from socketkit._progress import make_progress, stream
from socketkit.probes import Family, Progress, Source, Target
from socketkit.tls_results import TlsResult, TlsResults

__all__ = ["tls_check", "tls_check_iter", "tls_check_many"]

_make = TlsResult._from_core

#: tls_check's timeout (handshakes take a round trip more than a connect).
TLS_TIMEOUT = 3.0
#: Most handshakes in flight at once.
TLS_CONCURRENCY = 256


def tls_check(
    target: Target,
    port: int | None = None,
    *,
    timeout: float = TLS_TIMEOUT,
    tls: Any = True,
    starttls: str | None = None,
    family: Family = None,
    source_address: Source = None,
) -> TlsResult:
    """Check the TLS endpoint ``target``: a :class:`TlsResult` with the
    state (``valid``/``invalid``/``closed``/``filtered``/``error``), the
    certificate and chain, version, cipher, ALPN and phase timings.
    ``timeout`` bounds connect, STARTTLS and handshake together. Never
    raises for an endpoint that is down or a certificate that does not
    verify; raises ``ValueError``/``TypeError`` for malformed arguments.

    >>> socketkit.tls_check("example.org:443").days_left
    """
    return _make(
        _probe_core._tls_check(
            target,
            port,
            timeout=timeout,
            tls=tls,
            starttls=starttls,
            family=family,
            source_address=source_address,
        )
    )


def tls_check_many(
    targets: Iterable[Target],
    *,
    timeout: float = TLS_TIMEOUT,
    tls: Any = True,
    starttls: str | None = None,
    family: Family = None,
    source_address: Source = None,
    concurrency: int = TLS_CONCURRENCY,
    progress: Progress = None,
) -> TlsResults:
    """:func:`tls_check` of many endpoints at once (``concurrency`` at a
    time, at most 256); :class:`TlsResults` in input order. ``progress``
    as in :func:`socketkit.check_many`."""
    bar = make_progress(progress, "tls")
    try:
        raw = _probe_core._tls_check_many(
            targets,
            timeout=timeout,
            concurrency=concurrency,
            progress=bar.callback,
            tls=tls,
            starttls=starttls,
            family=family,
            source_address=source_address,
        )
    finally:
        bar.close()
    return TlsResults(map(_make, raw))


def tls_check_iter(
    targets: Iterable[Target],
    *,
    timeout: float = TLS_TIMEOUT,
    tls: Any = True,
    starttls: str | None = None,
    family: Family = None,
    source_address: Source = None,
    concurrency: int = TLS_CONCURRENCY,
    progress: Progress = None,
) -> Iterator[TlsResult]:
    """Like :func:`tls_check_many`, but yields each :class:`TlsResult` as it
    finishes. Closing the iterator cancels the checks still running."""
    raw = _probe_core._tls_check_iter(
        targets,
        timeout=timeout,
        concurrency=concurrency,
        tls=tls,
        starttls=starttls,
        family=family,
        source_address=source_address,
    )
    return stream(raw, _make, progress, "tls")
