"""What a TLS handshake reports: :class:`TlsInfo` and :class:`CertInfo`.

Plain frozen dataclasses (they pickle, compare by value and print
readably), built from what the Rust core read off the wire. Certificate
facts are printed the way ``openssl x509`` prints them, and are reported
whether or not the certificate verified: ``verified`` and ``verify_error``
sit next to the facts, never instead of them.
"""

from __future__ import annotations

import datetime as dt
import html
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CertInfo", "TlsInfo"]

_UTC = dt.UTC


def _utc(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, _UTC)


def _rows_html(caption: str, rows: list[tuple[str, Any]]) -> str:
    out = ['<table class="socketkit">', f"<caption>{html.escape(caption)}</caption><tbody>"]
    for k, v in rows:
        out.append(f"<tr><th>{html.escape(k)}</th><td>{html.escape('' if v is None else str(v))}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


@dataclass(frozen=True)
class CertInfo:
    """One certificate's facts.

    ``subject``, ``issuer``: RFC 4514 strings (``openssl x509 -nameopt
    RFC2253``); ``sans``: DNS names and IP addresses of the
    subjectAltName extension; ``serial``: upper-case hex as ``openssl x509
    -serial``; ``sha256``: the fingerprint as ``openssl x509 -fingerprint
    -sha256`` (``AB:CD:...``); ``not_before``, ``not_after``:
    timezone-aware UTC datetimes; ``key_type`` (``"RSA"``, ``"EC"``,
    ``"Ed25519"``...), ``key_bits``; ``signature_algorithm`` as OpenSSL
    names it (``"sha256WithRSAEncryption"``). ``days_left`` is computed
    when read (negative once expired).
    """

    subject: str
    issuer: str
    sans: list[str]
    serial: str
    sha256: str
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: str
    key_bits: int
    signature_algorithm: str

    @classmethod
    def _from_core(cls, d: dict[str, Any]) -> CertInfo:
        return cls(
            subject=d["subject"],
            issuer=d["issuer"],
            sans=list(d["sans"]),
            serial=d["serial"],
            sha256=d["sha256"],
            not_before=_utc(d["not_before"]),
            not_after=_utc(d["not_after"]),
            key_type=d["key_type"],
            key_bits=d["key_bits"],
            signature_algorithm=d["signature_algorithm"],
        )

    def __hash__(self) -> int:
        # Frozen in spirit: ``sans`` is a list (as DESIGN.md promises), so the
        # generated hash would fail on it.
        return hash((self.sha256, self.subject, tuple(self.sans)))

    @property
    def days_left(self) -> float:
        """Days until ``not_after``, from now; negative once expired."""
        return (self.not_after.timestamp() - time.time()) / 86400.0

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON/CSV: datetimes as ISO 8601 strings, ``sans`` as a list."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "sans": list(self.sans),
            "serial": self.serial,
            "sha256": self.sha256,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_left": round(self.days_left, 3),
            "key_type": self.key_type,
            "key_bits": self.key_bits,
            "signature_algorithm": self.signature_algorithm,
        }

    def __repr__(self) -> str:
        sans = ", ".join(self.sans) or "-"
        return (
            f"<CertInfo {self.subject!r} issuer={self.issuer!r} sans=[{sans}] "
            f"{self.key_type}-{self.key_bits} not_after={self.not_after:%Y-%m-%d %H:%M:%S}Z "
            f"days_left={self.days_left:.1f}>"
        )

    def _repr_html_(self) -> str:
        return _rows_html(f"certificate {self.subject}", list(self.to_dict().items()))


@dataclass(frozen=True)
class TlsInfo:
    """What a TLS handshake agreed on.

    ``version`` (``"TLSv1.3"``), ``cipher`` (the IANA name), ``alpn`` (the
    protocol agreed, or None), ``verified`` (the peer's certificate
    verified), ``verify_error`` (None, or a short reason such as
    ``"certificate expired"``, ``"unknown issuer"``, ``"hostname
    mismatch"``, ``"self-signed"``), ``certificates`` (the peer's chain as
    :class:`CertInfo`, leaf first, as it was sent).
    """

    version: str
    cipher: str
    alpn: str | None
    verified: bool
    verify_error: str | None
    certificates: list[CertInfo] = field(default_factory=list)

    @classmethod
    def _from_core(cls, d: dict[str, Any]) -> TlsInfo:
        return cls(
            version=d["version"],
            cipher=d["cipher"],
            alpn=d["alpn"],
            verified=d["verified"],
            verify_error=d["verify_error"],
            certificates=[CertInfo._from_core(c) for c in d["certificates"]],
        )

    def __hash__(self) -> int:
        return hash(
            (self.version, self.cipher, self.alpn, self.verified, self.verify_error, tuple(self.certificates))
        )

    @property
    def cert(self) -> CertInfo | None:
        """The peer's own (leaf) certificate, or None when it sent none."""
        return self.certificates[0] if self.certificates else None

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON: ``certificates`` as a list of dicts."""
        return {
            "version": self.version,
            "cipher": self.cipher,
            "alpn": self.alpn,
            "verified": self.verified,
            "verify_error": self.verify_error,
            "certificates": [c.to_dict() for c in self.certificates],
        }

    def __repr__(self) -> str:
        outcome = "verified" if self.verified else f"NOT verified ({self.verify_error or 'unknown'})"
        alpn = f" alpn={self.alpn}" if self.alpn else ""
        leaf = self.cert
        who = f" {leaf.subject!r} days_left={leaf.days_left:.1f}" if leaf else ""
        return f"<TlsInfo {self.version} {self.cipher}{alpn} {outcome}{who}>"

    def _repr_html_(self) -> str:
        rows: list[tuple[str, Any]] = [
            ("version", self.version),
            ("cipher", self.cipher),
            ("alpn", self.alpn),
            ("verified", self.verified),
            ("verify_error", self.verify_error),
        ]
        for i, c in enumerate(self.certificates):
            rows.append((f"certificate {i}", f"{c.subject} (issuer {c.issuer}, days left {c.days_left:.1f})"))
        return _rows_html("TLS", rows)
