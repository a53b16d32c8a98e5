"""TcpClient over TLS against real servers (nginx, redis; tls_fixtures.py):
certificate facts equal the PKI's and `openssl x509`'s, verification
outcomes, verify=False still reporting everything, client certificates,
ALPN, protocol versions, framing over TLS; TlsConfig, TlsInfo, CertInfo and
the TLS exceptions as Python objects."""

from __future__ import annotations

import copy
import datetime as dt
import pickle
import re
import ssl
from pathlib import Path

import pytest
from peers import needs_ipv6
from tls_pki import WRONG_NAME, openssl_x509

import socketkit
from socketkit import CertificateError, CertInfo, TcpClient, TlsConfig, TlsError, TlsInfo

KINDS = ["valid", "valid_ec", "valid_ed25519", "expired", "wrong_name", "self_signed", "chain"]


def trusting(pki, **kw) -> TlsConfig:
    return TlsConfig(ca_file=pki.ca.cert, **kw)


def openssl_date(text: str) -> dt.datetime:
    """ "Nov  5 11:15:43 2027 GMT" -> aware UTC datetime."""
    return dt.datetime.strptime(re.sub(" +", " ", text), "%b %d %H:%M:%S %Y GMT").replace(tzinfo=dt.UTC)


def assert_facts(info: CertInfo, cert) -> None:
    """Every CertInfo field against the PKI's facts and `openssl x509`."""
    assert info.subject == cert.subject
    assert info.issuer == cert.issuer
    assert info.sans == list(cert.sans)
    assert info.serial == cert.serial
    assert info.sha256 == cert.sha256
    assert info.not_before == cert.not_before
    assert info.not_after == cert.not_after
    assert info.not_before.tzinfo is not None and info.not_before.utcoffset() == dt.timedelta(0)
    assert (info.key_type, info.key_bits) == (cert.key_type, cert.key_bits)
    assert info.signature_algorithm == cert.signature_algorithm
    expected_days = (cert.not_after - dt.datetime.now(dt.UTC)).total_seconds() / 86400
    assert info.days_left == pytest.approx(expected_days, abs=0.01)
    o = openssl_x509(cert.cert)
    assert (info.subject, info.issuer) == (o["subject"], o["issuer"])
    assert info.serial == o["serial"]
    assert info.sha256 == o["sha256"]
    assert info.signature_algorithm == o["signature_algorithm"]
    assert (info.not_before, info.not_after) == (openssl_date(o["not_before"]), openssl_date(o["not_after"]))


# ---------------------------------------------------------------- facts


@pytest.mark.parametrize("kind", KINDS)
def test_every_fact_equals_the_certificate(nginx_tls, kind):
    cert = nginx_tls.extra["certs"][kind]
    # verify=False: the facts are there whatever the verification says.
    with TcpClient(("localhost", nginx_tls.ports[kind]), tls=TlsConfig(verify=False), timeout=5) as c:
        info = c.tls_info()
    assert isinstance(info, TlsInfo)
    assert_facts(info.certificates[0], cert)
    assert info.cert == info.certificates[0]


def test_chain_is_leaf_then_intermediate(nginx_tls, tls_pki):
    with TcpClient(("localhost", nginx_tls.ports["chain"]), tls=trusting(tls_pki), timeout=5) as c:
        info = c.tls_info()
    assert info.verified and info.verify_error is None
    assert len(info.certificates) == 2
    assert_facts(info.certificates[0], tls_pki.chain_leaf)
    assert_facts(info.certificates[1], tls_pki.intermediate)


# ---------------------------------------------------------------- verification


@pytest.mark.parametrize("kind", ["valid", "valid_ec", "valid_ed25519", "chain"])
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
def test_valid_with_ca_file_verifies(nginx_tls, tls_pki, kind, host):
    with TcpClient((host, nginx_tls.ports[kind]), tls=trusting(tls_pki), timeout=5) as c:
        info = c.tls_info()
        assert (info.verified, info.verify_error) == (True, None)
        assert info.version in ("TLSv1.2", "TLSv1.3")
        assert info.cipher.startswith("TLS_")
        assert info.alpn is None
        assert (
            c.request(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n", until=b"\r\n") == b"HTTP/1.1 200 OK\r\n"
        )


INVALID = [
    ("expired", "certificate expired"),
    ("wrong_name", "hostname mismatch"),
    ("self_signed", "self-signed"),
]


@pytest.mark.parametrize(("kind", "reason"), INVALID)
def test_invalid_certificates_raise_with_the_reason(nginx_tls, tls_pki, kind, reason):
    with pytest.raises(CertificateError) as ei:
        TcpClient(("localhost", nginx_tls.ports[kind]), tls=trusting(tls_pki), timeout=5)
    e = ei.value
    assert e.verify_error == reason
    assert e.verify_message == reason
    assert e.phase == "tls"
    assert reason in str(e)
    # Code written for the stdlib keeps catching it.
    assert isinstance(e, ssl.SSLCertVerificationError)
    assert isinstance(e, ssl.SSLError)
    assert isinstance(e, TlsError)
    assert isinstance(e, socketkit.Error)


def test_unknown_issuer_without_ca_file(nginx_tls):
    # The test CA is not among the system roots.
    with pytest.raises(CertificateError) as ei:
        TcpClient(("localhost", nginx_tls.ports["valid"]), tls=True, timeout=5)
    assert ei.value.verify_error == "unknown issuer"


@pytest.mark.parametrize(("kind", "reason"), [*INVALID, ("valid", None)])
def test_verify_false_completes_and_reports_the_reason(nginx_tls, tls_pki, kind, reason):
    cfg = trusting(tls_pki, verify=False)
    with TcpClient(("localhost", nginx_tls.ports[kind]), tls=cfg, timeout=5) as c:
        info = c.tls_info()
        assert info.verified is (reason is None)
        assert info.verify_error == reason
        assert_facts(info.certificates[0], nginx_tls.extra["certs"][kind])
        # The connection works: nginx answers over it.
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert kind.encode() in b"".join(c.lines())


def test_verify_false_without_ca_file_says_unknown_issuer(nginx_tls):
    with TcpClient(("localhost", nginx_tls.ports["valid"]), tls=TlsConfig(verify=False), timeout=5) as c:
        assert (c.tls_info().verified, c.tls_info().verify_error) == (False, "unknown issuer")


def test_server_hostname_overrides_the_name(nginx_tls, tls_pki):
    port = nginx_tls.ports["wrong_name"]
    with TcpClient(("127.0.0.1", port), tls=trusting(tls_pki, server_hostname=WRONG_NAME), timeout=5) as c:
        assert c.tls_info().verified
    # And the other way round: a right certificate checked for a wrong name.
    with pytest.raises(CertificateError, match="hostname mismatch"):
        TcpClient(("localhost", nginx_tls.ports["valid"]), tls=trusting(tls_pki, server_hostname=WRONG_NAME))


def test_ip_literal_checks_ip_sans(nginx_tls, tls_pki):
    # The wrong-name certificate has no IP SANs: an IP literal cannot match.
    with pytest.raises(CertificateError, match="hostname mismatch"):
        TcpClient(("127.0.0.1", nginx_tls.ports["wrong_name"]), tls=trusting(tls_pki), timeout=5)


# ---------------------------------------------------------------- client certificates, ALPN, versions


def test_client_certificate_with_nginx(nginx_tls, tls_pki):
    port = nginx_tls.ports["client_auth"]
    cfg = trusting(tls_pki, cert_file=tls_pki.client.cert, key_file=tls_pki.client.key)
    with TcpClient(("localhost", port), tls=cfg, timeout=5) as c:
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        body = b"".join(c.lines())
    assert b"client_auth CN=socketkit test client" in body
    # Without one nginx completes the handshake and answers 400.
    with TcpClient(("localhost", port), tls=trusting(tls_pki), timeout=5) as c:
        assert c.request(b"GET / HTTP/1.0\r\n\r\n", until=b"\r\n").startswith(b"HTTP/1.1 400")


def test_alpn_is_negotiated(nginx_tls, tls_pki):
    cfg = trusting(tls_pki, alpn=["h2", "http/1.1"])
    with TcpClient(("localhost", nginx_tls.ports["valid"]), tls=cfg, timeout=5) as c:
        assert c.tls_info().alpn == "http/1.1"


def test_versions(nginx_tls, redis_tls, tls_pki):
    # redis (OpenSSL defaults) speaks both; this nginx build only TLS 1.2.
    for version, name in (("1.2", "TLSv1.2"), ("1.3", "TLSv1.3")):
        cfg = trusting(tls_pki, min_version=version, max_version=version)
        with TcpClient(("localhost", redis_tls.port), tls=cfg, timeout=5) as c:
            assert c.tls_info().version == name
            assert c.request(b"PING\r\n", until=b"\r\n") == b"+PONG\r\n"
    with TcpClient(("localhost", redis_tls.port), tls=trusting(tls_pki), timeout=5) as c:
        assert c.tls_info().version == "TLSv1.3"
    with TcpClient(("localhost", nginx_tls.ports["valid"]), tls=trusting(tls_pki, max_version="1.2")) as c:
        assert c.tls_info().version == "TLSv1.2"
    with pytest.raises(TlsError) as ei:
        TcpClient(
            ("localhost", nginx_tls.ports["valid"]), tls=trusting(tls_pki, min_version="1.3"), timeout=5
        )
    assert not isinstance(ei.value, CertificateError)
    assert ei.value.phase == "tls"


# ---------------------------------------------------------------- redis


def resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def test_redis_speaks_resp_over_tls(redis_tls, tls_pki):
    with TcpClient(("localhost", redis_tls.port), tls=trusting(tls_pki), timeout=5) as c:
        assert c.request(resp(b"PING"), until=b"\r\n") == b"+PONG\r\n"
        assert c.request(resp(b"SET", b"socketkit:tls", b"v" * 100_000), until=b"\r\n") == b"+OK\r\n"
        c.sendall(resp(b"GET", b"socketkit:tls"))
        assert c.recv_line() == b"$100000\r\n"
        assert c.recv_exact(100_002) == b"v" * 100_000 + b"\r\n"
        buf = bytearray(16)
        c.sendall(resp(b"PING"))
        n = c.recv_into(buf)
        while not bytes(buf[:n]).endswith(b"\r\n"):
            n += c.recv_into(memoryview(buf)[n:])
        assert bytes(buf[:n]) == b"+PONG\r\n"
        assert c.tls_info().certificates[0].sha256 == tls_pki.valid.sha256


def test_redis_client_auth(redis_tls_client_auth, tls_pki):
    port = redis_tls_client_auth.port
    cfg = trusting(tls_pki, cert_file=tls_pki.client.cert, key_file=tls_pki.client.key)
    with TcpClient(("localhost", port), tls=cfg, timeout=5) as c:
        assert c.request(resp(b"PING"), until=b"\r\n") == b"+PONG\r\n"
    # Without a certificate: TLS 1.3 lets the client finish first, so the
    # refusal may come with the handshake or on the first read.
    with pytest.raises((TlsError, socketkit.ConnectionClosedError, ConnectionResetError, BrokenPipeError)):
        with TcpClient(("localhost", port), tls=trusting(tls_pki), timeout=5) as c:
            c.request(resp(b"PING"), until=b"\r\n")


# ---------------------------------------------------------------- TlsConfig, TlsInfo, CertInfo


def test_tls_config_values_and_errors(tls_pki):
    c = TlsConfig(verify=False, ca_file=Path(tls_pki.ca.cert), alpn=["h2"], min_version="1.2")
    assert (c.verify, c.ca_file, c.alpn, c.min_version, c.max_version) == (
        False, str(tls_pki.ca.cert), ("h2",), "1.2", None,
    )  # fmt: skip
    assert c == pickle.loads(pickle.dumps(c)) == copy.deepcopy(c)
    assert hash(c) == hash(pickle.loads(pickle.dumps(c)))
    assert c != TlsConfig()
    assert repr(TlsConfig()) == "TlsConfig()"
    assert repr(c).startswith("TlsConfig(verify=False, ca_file=")
    for kw, exc, text in [
        ({"verify": 1}, TypeError, "verify"),
        ({"min_version": "1.1"}, ValueError, "min_version"),
        ({"max_version": 1.3}, TypeError, "max_version"),
        ({"alpn": [b"h2"]}, TypeError, "alpn"),
        ({"alpn": [""]}, ValueError, "alpn"),
        ({"ca_file": 3}, TypeError, "ca_file"),
        ({"key_file": "k.pem"}, ValueError, "key_file"),
        ({"server_hostname": "bad name!"}, ValueError, "bad name!"),
        ({"min_version": "1.3", "max_version": "1.2"}, ValueError, "min_version"),
    ]:
        with pytest.raises(exc, match=re.escape(text)):
            TlsConfig(**kw)
    with pytest.raises(TypeError, match="tls must be"):
        TcpClient(("127.0.0.1", 9), tls="yes")
    with pytest.raises(ValueError, match="ca_file"):
        TcpClient(("127.0.0.1", 9), tls=TlsConfig(ca_file="/nonexistent/ca.pem"))


def test_tls_info_objects_pickle_compare_and_print(nginx_tls, tls_pki):
    with TcpClient(("localhost", nginx_tls.ports["chain"]), tls=trusting(tls_pki), timeout=5) as c:
        info = c.tls_info()
        assert info == c.tls_info()
    assert pickle.loads(pickle.dumps(info)) == info
    assert hash(info) == hash(pickle.loads(pickle.dumps(info)))
    leaf = info.certificates[0]
    assert "TLSv1.2" in repr(info) and "verified" in repr(info)
    assert "CN=localhost" in repr(leaf) and "days_left=" in repr(leaf)
    assert "<table" in info._repr_html_() and "<table" in leaf._repr_html_()
    d = leaf.to_dict()
    assert d["not_after"] == tls_pki.chain_leaf.not_after.isoformat()
    assert d["sans"] == ["localhost", "127.0.0.1", "::1"]
    assert info.to_dict()["certificates"][1]["subject"] == tls_pki.intermediate.subject
    assert (info.to_dict()["version"], info.to_dict()["verified"]) == ("TLSv1.2", True)


def test_plain_client_has_no_tls_info(nginx_tls):
    with TcpClient(("localhost", nginx_tls.ports["valid"]), tls=False, timeout=5) as c:
        assert c.tls_info() is None
        assert "tls" not in repr(c)
    with TcpClient(("localhost", nginx_tls.ports["valid"]), tls=None, timeout=5) as c:
        assert c.tls_info() is None
