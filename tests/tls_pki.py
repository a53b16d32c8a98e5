"""A throw-away PKI for the TLS tests, made with `cryptography`.

`make_pki(directory)` writes every certificate and key as PEM files and
returns a `Pki` whose `Cert` entries carry the paths and the facts a TLS
client should report for them (formatted the way `openssl x509` prints
them), so tests compare against known values instead of re-deriving them.
Plain functions, no pytest: benches/ can use them too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = dt.UTC
# The names the server certificates are for; "localhost" resolves to both
# loopback addresses, so one certificate verifies by name and by either IP.
LOCAL_SANS = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")
WRONG_NAME = "wrong.socketkit.invalid"


@dataclass(frozen=True)
class Cert:
    """One certificate and its key on disk, with the facts about it."""

    name: str
    cert: Path  # the certificate alone (PEM)
    key: Path  # its private key (PEM, PKCS#8, unencrypted)
    chain: Path  # leaf then intermediates, what a server should send (PEM)
    der: bytes  # the certificate, DER: what getpeercert(binary_form=True) returns
    sha256: str  # "AB:CD:..." as `openssl x509 -fingerprint -sha256` prints it
    serial: str  # upper-case hex as `openssl x509 -serial` prints it
    subject: str  # RFC 4514
    issuer: str  # RFC 4514
    sans: tuple[str, ...]  # ("localhost", "127.0.0.1", "::1"): DNS names and IPs as text
    not_before: dt.datetime  # timezone-aware UTC
    not_after: dt.datetime
    key_type: str  # "RSA", "EC", "Ed25519"
    key_bits: int
    signature_algorithm: str  # as `openssl x509 -text` prints it, e.g. "sha256WithRSAEncryption"
    is_ca: bool

    @property
    def sha256_hex(self) -> str:
        """Lower-case hex without colons, as hashlib prints it."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def pem(self) -> str:
        return self.cert.read_text()


@dataclass(frozen=True)
class Pki:
    """Every certificate the TLS tests need, under `directory`.

    Server certificates are for localhost, 127.0.0.1 and ::1 unless the name
    says otherwise; `ca` signed them unless said otherwise.
    """

    directory: Path
    ca: Cert  # the test root CA (RSA); `ca.cert` is the file to trust
    valid: Cert  # RSA 2048, verifies with `ca`
    valid_ec: Cert  # EC P-256, verifies with `ca`
    valid_ed25519: Cert  # Ed25519, verifies with `ca`
    expired: Cert  # not_after two days ago (RSA, signed by `ca`)
    wrong_name: Cert  # for WRONG_NAME only (EC, signed by `ca`)
    self_signed: Cert  # for the local names, issued by itself (Ed25519), not a CA
    intermediate: Cert  # an intermediate CA signed by `ca`
    chain_leaf: Cert  # signed by `intermediate`; its `.chain` holds leaf + intermediate
    client_ca: Cert  # a second root that signs client certificates only
    client: Cert  # a client certificate (clientAuth) signed by `client_ca`
    extra: dict[str, Cert] = field(default_factory=dict)

    def server_certs(self) -> dict[str, Cert]:
        """The certificates a test server presents, by kind."""
        return {
            "valid": self.valid,
            "valid_ec": self.valid_ec,
            "valid_ed25519": self.valid_ed25519,
            "expired": self.expired,
            "wrong_name": self.wrong_name,
            "self_signed": self.self_signed,
            "chain": self.chain_leaf,
        }


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "socketkit tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _new_key(kind: str):
    if kind == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "EC":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def _sans(names: tuple[str, ...]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        kind, _, value = n.partition(":")
        if kind == "DNS":
            out.append(x509.DNSName(value))
        else:
            out.append(x509.IPAddress(ipaddress.ip_address(value)))
    return out


def _key_facts(key) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "EC", key.curve.key_size
    # openssl's EVP_PKEY_get_bits says 253 for Ed25519; the key itself is 256 bits.
    return "Ed25519", 256


def _sig_name(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid.dotted_string
    return {
        "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
        "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
        "1.3.101.112": "ED25519",
    }[oid]


def _issue(
    directory: Path,
    name: str,
    *,
    cn: str,
    key_type: str,
    issuer: tuple[x509.Certificate, object, Cert] | None,
    sans: tuple[str, ...] = (),
    ca: bool = False,
    path_len: int | None = None,
    client: bool = False,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> tuple[x509.Certificate, object, Cert]:
    key = _new_key(key_type)
    subject = _name(cn)
    issuer_cert, issuer_key = (issuer[0], issuer[1]) if issuer else (None, key)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()), critical=False
        )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(_sans(sans)), critical=False)
    # Ed25519 signs without a separate digest; the others use SHA-256.
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = b.sign(issuer_key, algorithm)

    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    chain_path = directory / f"{name}.chain.crt"
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    # A server sends its leaf and the intermediates, never the root.
    chain_pem = pem
    if issuer is not None and not issuer[2].subject == issuer[2].issuer:
        chain_pem += issuer[2].chain.read_bytes()
    chain_path.write_bytes(chain_pem)

    der = cert.public_bytes(serialization.Encoding.DER)
    kt, bits = _key_facts(key)
    n = cert.serial_number
    info = Cert(
        name=name,
        cert=cert_path,
        key=key_path,
        chain=chain_path,
        der=der,
        sha256=":".join(f"{b:02X}" for b in hashlib.sha256(der).digest()),
        serial=n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big").hex().upper(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=tuple(s.partition(":")[2] for s in sans),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=kt,
        key_bits=bits,
        signature_algorithm=_sig_name(cert),
        is_ca=ca,
    )
    return cert, key, info


def make_pki(directory: Path | str) -> Pki:
    """Write the whole test PKI into `directory` (created if missing)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    # Whole seconds: certificates carry no fractions, and the facts must
    # equal what a client reads back.
    now = dt.datetime.now(UTC).replace(microsecond=0)
    day = dt.timedelta(days=1)
    long = {"not_before": now - day, "not_after": now + 365 * day}

    ca = _issue(d, "ca", cn="socketkit test CA", key_type="RSA", issuer=None, ca=True, **long)
    inter = _issue(
        d, "intermediate", cn="socketkit test intermediate CA", key_type="EC", issuer=ca, ca=True,
        path_len=0, **long,
    )  # fmt: skip
    client_ca = _issue(
        d, "client_ca", cn="socketkit test client CA", key_type="EC", issuer=None, ca=True, **long
    )

    def server(name: str, key_type: str, issuer=ca, sans=LOCAL_SANS, cn="localhost", **when) -> Cert:
        return _issue(d, name, cn=cn, key_type=key_type, issuer=issuer, sans=sans, **(when or long))[2]

    return Pki(
        directory=d,
        ca=ca[2],
        valid=server("valid", "RSA"),
        valid_ec=server("valid_ec", "EC"),
        valid_ed25519=server("valid_ed25519", "Ed25519"),
        expired=server("expired", "RSA", not_before=now - 30 * day, not_after=now - 2 * day),
        wrong_name=server("wrong_name", "EC", sans=(f"DNS:{WRONG_NAME}",), cn=WRONG_NAME),
        self_signed=server("self_signed", "Ed25519", issuer=None),
        intermediate=inter[2],
        chain_leaf=server("chain_leaf", "RSA", issuer=inter),
        client_ca=client_ca[2],
        client=_issue(
            d, "client", cn="socketkit test client", key_type="EC", issuer=client_ca, client=True, **long
        )[2],
    )


def openssl_x509(path: Path | str) -> dict[str, str]:
    """What `openssl x509` prints for a certificate file: subject, issuer,
    serial, sha256 fingerprint, notBefore/notAfter, signature algorithm, key
    algorithm. The reference that TLS facts are compared with."""
    out = subprocess.run(
        [
            "openssl", "x509", "-in", str(path), "-noout", "-subject", "-issuer", "-serial",
            "-fingerprint", "-sha256", "-dates", "-nameopt", "RFC2253", "-text",
        ],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    facts: dict[str, str] = {}
    for line in out.splitlines():
        s = line.strip()
        for key, prefix in (
            ("subject", "subject="),
            ("issuer", "issuer="),
            ("serial", "serial="),
            ("sha256", "sha256 Fingerprint="),
            ("not_before", "notBefore="),
            ("not_after", "notAfter="),
            ("signature_algorithm", "Signature Algorithm: "),
            ("public_key_algorithm", "Public Key Algorithm: "),
        ):
            if s.startswith(prefix) and key not in facts:
                facts[key] = s[len(prefix) :]
    return facts
