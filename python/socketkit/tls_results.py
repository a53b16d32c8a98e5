"""What ``tls_check`` returns: :class:`TlsResult` (one endpoint) and
:class:`TlsResults` (many, input order), with the exports every result type
has (``repr``, ``_repr_html_``, ``to_dict()``/``to_dicts()``, ``to_json()``,
``to_csv()``, ``to_pandas()``)."""

from __future__ import annotations

from typing import Any, NamedTuple, Self

from socketkit._format import MAX_ROWS, TIMING_FIELDS, Export, ResultList, fmt_target, text_table
from socketkit.tls import CertInfo, TlsInfo

__all__ = ["TLS_FIELDS", "TlsResult", "TlsResults"]

#: The columns of a TLS result's row, in ``to_dict()`` order.
TLS_FIELDS = (
    "host",
    "address",
    "port",
    "state",
    "ok",
    "verified",
    "verify_error",
    "version",
    "cipher",
    "alpn",
    "subject",
    "issuer",
    "not_after",
    "days_left",
    "sha256",
    *TIMING_FIELDS,
    "error",
)


class _TlsFields(NamedTuple):
    host: str
    address: str | None
    port: int
    state: str
    verified: bool | None
    verify_error: str | None
    version: str | None
    cipher: str | None
    alpn: str | None
    cert: CertInfo | None
    chain: tuple[CertInfo, ...]
    days_left: float | None
    timings: dict[str, float | None] | None
    error: str | None


class TlsResult(_TlsFields, Export):
    """One TLS check of one ``host:port``.

    ``state``: ``"valid"`` (handshake done, certificate verified),
    ``"invalid"`` (handshake done, verification failed: ``verify_error``
    says why, e.g. ``"certificate expired"``), or the connect states
    ``"closed"``, ``"filtered"``, ``"error"`` (``error`` says why, also for
    a failed handshake or STARTTLS exchange). ``ok`` is ``state ==
    "valid"``. The certificate facts (``cert``, the leaf; ``chain``, as
    the server sent it; ``days_left`` of the leaf when checked) are there
    whether or not it verified. ``timings`` as on :class:`CheckResult`.
    """

    __slots__ = ()

    @classmethod
    def _from_core(cls, t: tuple[Any, ...]) -> Self:
        host, address, port, state, info, timings, error = t
        if info is None:
            return cls(
                host, address, port, state, None, None, None, None, None, None, (), None, timings, error
            )
        leaf = info.cert
        return cls(
            host,
            address,
            port,
            state,
            info.verified,
            info.verify_error,
            info.version,
            info.cipher,
            info.alpn,
            leaf,
            tuple(info.certificates),
            None if leaf is None else leaf.days_left,
            timings,
            error,
        )

    @property
    def ok(self) -> bool:
        """True when the certificate verified."""
        return self.state == "valid"

    @property
    def target(self) -> str:
        return fmt_target(self.host, self.port)

    def __repr__(self) -> str:
        parts = [f"{self.target} {self.state}"]
        if self.version:
            parts.append(f"{self.version} {self.cipher}")
        if self.verify_error:
            parts.append(f"verify_error={self.verify_error!r}")
        if self.cert is not None:
            parts.append(f"subject={self.cert.subject!r}")
        if self.days_left is not None:
            parts.append(f"days_left={self.days_left:.1f}")
        if self.address is not None and self.address != self.host:
            parts.append(f"address={self.address}")
        if self.error:
            parts.append(f"error={self.error!r}")
        return f"TlsResult({', '.join(parts)})"

    __str__ = __repr__

    _columns = TLS_FIELDS

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON and CSV (the leaf's facts flattened; the
        whole chain is in ``to_json()``)."""
        c = self.cert
        t = self.timings or {}
        return {
            "host": self.host,
            "address": self.address,
            "port": self.port,
            "state": self.state,
            "ok": self.ok,
            "verified": self.verified,
            "verify_error": self.verify_error,
            "version": self.version,
            "cipher": self.cipher,
            "alpn": self.alpn,
            "subject": None if c is None else c.subject,
            "issuer": None if c is None else c.issuer,
            "not_after": None if c is None else c.not_after.isoformat(),
            "days_left": None if self.days_left is None else round(self.days_left, 3),
            "sha256": None if c is None else c.sha256,
            **{k: t.get(k) for k in TIMING_FIELDS},
            "error": self.error,
        }

    def to_dicts(self) -> list[dict[str, Any]]:
        return [self.to_dict()]

    def _json_value(self) -> Any:
        return {**self.to_dict(), "chain": [c.to_dict() for c in self.chain]}

    def _html(self) -> tuple[list[dict[str, Any]], str, int]:
        return [self.to_dict()], f"{self.target}: {self.state}", 0

    def tls_info(self) -> TlsInfo | None:
        """The handshake's outcome as :class:`TlsInfo` (None when it did not complete)."""
        if self.version is None:
            return None
        return TlsInfo(
            self.version,
            self.cipher or "",
            self.alpn,
            bool(self.verified),
            self.verify_error,
            list(self.chain),
        )


class TlsResults(ResultList[TlsResult]):
    """A list of :class:`TlsResult` in input order, with ``valid``,
    ``invalid``, ``errors`` (every other state), ``counts`` and ``all_ok``."""

    _columns = TLS_FIELDS

    @property
    def valid(self) -> TlsResults:
        return self._where(lambda r: r.state == "valid")

    @property
    def invalid(self) -> TlsResults:
        return self._where(lambda r: r.state == "invalid")

    @property
    def errors(self) -> TlsResults:
        """Results without a completed handshake (closed, filtered, error)."""
        return self._where(lambda r: r.state not in ("valid", "invalid"))

    def __repr__(self) -> str:
        shown = self[:MAX_ROWS]
        rows = [
            [
                r.target,
                r.state,
                r.version or "-",
                "-" if r.days_left is None else f"{r.days_left:.1f}",
                r.verify_error or r.error or "",
            ]
            for r in shown
        ]
        table = text_table(["TARGET", "STATE", "VERSION", "DAYS LEFT", "WHY"], rows, len(self) - len(shown))
        return f"TlsResults({self._summary()})\n{table}"

    __str__ = __repr__
