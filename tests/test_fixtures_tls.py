"""The TLS fixtures hold what they promise, proved with the stdlib (the
reference the socketkit TLS tests compare with): each server presents the
intended certificate, verification fails for the intended reason, STARTTLS
yields the configured certificate, and the plain services answer."""

from __future__ import annotations

import datetime as dt
import hashlib
import imaplib
import os
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
from pathlib import Path

import daemons
import pytest
import starttls_daemons
from peers import needs_ipv6
from tls_pki import WRONG_NAME, openssl_x509

KINDS = ["valid", "valid_ec", "valid_ed25519", "expired", "wrong_name", "self_signed", "chain", "client_auth"]


def peer_der(host: str, port: int, ctx: ssl.SSLContext | None = None, server_hostname=None) -> bytes:
    with socket.create_connection((host, port), timeout=5) as s:
        with (ctx or daemons.insecure_context()).wrap_socket(s, server_hostname=server_hostname) as t:
            der = t.getpeercert(binary_form=True)
            assert der is not None
            return der


def openssl_date(text: str) -> dt.datetime:
    """ "Nov  5 11:15:43 2027 GMT" -> aware UTC datetime."""
    return dt.datetime.strptime(re.sub(" +", " ", text), "%b %d %H:%M:%S %Y GMT").replace(tzinfo=dt.UTC)


def trusting(ca) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca.cert))


def http_get(t: ssl.SSLSocket) -> bytes:
    t.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    chunks = []
    while b := t.recv(4096):
        chunks.append(b)
    return b"".join(chunks)


# ---------------------------------------------------------------- the PKI


ALL_CERTS = "ca valid valid_ec valid_ed25519 expired wrong_name self_signed intermediate chain_leaf"
ALL_CERTS += " client_ca client"


@pytest.mark.parametrize("name", ALL_CERTS.split())
def test_pki_facts_match_openssl(tls_pki, name):
    cert = getattr(tls_pki, name)
    o = openssl_x509(cert.cert)
    assert o["serial"] == cert.serial
    assert o["sha256"] == cert.sha256
    assert cert.sha256.replace(":", "").lower() == cert.sha256_hex
    assert o["subject"] == cert.subject
    assert o["issuer"] == cert.issuer
    assert o["signature_algorithm"] == cert.signature_algorithm
    assert openssl_date(o["not_before"]) == cert.not_before
    assert openssl_date(o["not_after"]) == cert.not_after
    key_alg = {"RSA": "rsaEncryption", "EC": "id-ecPublicKey", "Ed25519": "ED25519"}[cert.key_type]
    assert o["public_key_algorithm"] == key_alg


def test_pki_kinds(tls_pki):
    now = dt.datetime.now(dt.UTC)
    assert tls_pki.valid.sans == ("localhost", "127.0.0.1", "::1")
    assert (tls_pki.valid.key_type, tls_pki.valid.key_bits) == ("RSA", 2048)
    assert (tls_pki.valid_ec.key_type, tls_pki.valid_ec.key_bits) == ("EC", 256)
    assert tls_pki.valid_ed25519.key_type == "Ed25519"
    assert tls_pki.self_signed.signature_algorithm == "ED25519"
    assert tls_pki.expired.not_after < now < tls_pki.valid.not_after
    assert tls_pki.wrong_name.sans == (WRONG_NAME,)
    assert tls_pki.self_signed.subject == tls_pki.self_signed.issuer
    assert tls_pki.chain_leaf.issuer == tls_pki.intermediate.subject
    assert tls_pki.intermediate.issuer == tls_pki.ca.subject
    assert tls_pki.client.issuer == tls_pki.client_ca.subject
    # A server sends leaf + intermediate, never the root.
    assert tls_pki.chain_leaf.chain.read_text().count("BEGIN CERTIFICATE") == 2
    assert tls_pki.valid.chain.read_text().count("BEGIN CERTIFICATE") == 1


# ---------------------------------------------------------------- nginx


@pytest.mark.parametrize("kind", KINDS)
def test_nginx_presents_the_intended_certificate(nginx_tls, kind):
    cert = nginx_tls.extra["certs"][kind]
    port = nginx_tls.ports[kind]
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=5)
    assert ssl.PEM_cert_to_DER_cert(pem) == cert.der
    for host in nginx_tls.hosts:
        assert hashlib.sha256(peer_der(host, port)).hexdigest() == cert.sha256_hex


@needs_ipv6
def test_nginx_listens_on_both_loopbacks(nginx_tls):
    assert nginx_tls.hosts == ("127.0.0.1", "::1")
    assert peer_der("::1", nginx_tls.ports["valid"]) == nginx_tls.extra["certs"]["valid"].der


@pytest.mark.parametrize("kind", ["valid", "valid_ec", "valid_ed25519", "chain"])
@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "::1"])
def test_valid_kinds_verify_with_the_test_ca(nginx_tls, tls_pki, kind, name):
    if name == "::1" and "::1" not in nginx_tls.hosts:
        pytest.skip("no IPv6 loopback")
    host = "::1" if name == "::1" else "127.0.0.1"
    der = peer_der(host, nginx_tls.ports[kind], trusting(tls_pki.ca), server_hostname=name)
    assert der == nginx_tls.extra["certs"][kind].der


def test_chain_port_sends_leaf_and_intermediate(nginx_tls, tls_pki):
    # Only the root is trusted, so verification above needs the intermediate
    # from the server; openssl shows both certificates arriving.
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{nginx_tls.ports['chain']}", "-showcerts"],
        input="", capture_output=True, text=True, timeout=30, check=False,
    ).stdout  # fmt: skip
    sent = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    assert [ssl.PEM_cert_to_DER_cert(p) for p in sent] == [tls_pki.chain_leaf.der, tls_pki.intermediate.der]


@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [
        ("expired", 10, "certificate has expired"),
        ("wrong_name", 62, "Hostname mismatch, certificate is not valid for 'localhost'."),
        ("self_signed", 18, "self-signed certificate"),
    ],
)
def test_invalid_kinds_fail_for_the_intended_reason(nginx_tls, tls_pki, kind, code, message):
    with pytest.raises(ssl.SSLCertVerificationError) as e:
        peer_der("127.0.0.1", nginx_tls.ports[kind], trusting(tls_pki.ca), server_hostname="localhost")
    assert (e.value.verify_code, e.value.verify_message) == (code, message)


def test_test_ca_is_unknown_to_the_system_roots(nginx_tls):
    with pytest.raises(ssl.SSLCertVerificationError) as e:
        peer_der("127.0.0.1", nginx_tls.ports["valid"], ssl.create_default_context(), "localhost")
    assert (e.value.verify_code, e.value.verify_message) == (20, "unable to get local issuer certificate")


def test_wrong_name_verifies_for_its_own_name(nginx_tls, tls_pki):
    der = peer_der("127.0.0.1", nginx_tls.ports["wrong_name"], trusting(tls_pki.ca), WRONG_NAME)
    assert der == tls_pki.wrong_name.der


def test_client_auth_port_needs_a_client_certificate(nginx_tls, tls_pki):
    port = nginx_tls.ports["client_auth"]
    ctx = trusting(tls_pki.ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            reply = http_get(t)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"No required SSL certificate was sent" in reply

    ctx.load_cert_chain(tls_pki.client.cert, tls_pki.client.key)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            reply = http_get(t)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply.endswith(b"client_auth " + tls_pki.client.subject.encode() + b"\n")


def test_nginx_tls_ports_factory(nginx_tls_ports, tls_pki):
    ports = nginx_tls_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        assert peer_der("127.0.0.1", port, trusting(tls_pki.ca), "localhost") == tls_pki.valid.der


# ---------------------------------------------------------------- redis


def redis_ping(port: int, ctx: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            assert t.getpeercert(binary_form=True) is not None
            t.sendall(b"*1\r\n$4\r\nPING\r\n")
            return t.recv(64)


def test_redis_tls_answers_ping(redis_tls, tls_pki):
    assert redis_ping(redis_tls.port, trusting(tls_pki.ca)) == b"+PONG\r\n"
    assert peer_der("127.0.0.1", redis_tls.port) == tls_pki.valid.der


def test_redis_tls_client_auth(redis_tls_client_auth, tls_pki):
    ctx = trusting(tls_pki.ca)
    # TLS 1.3: the client finishes its side first, so the refusal (an alert)
    # may surface on the first read instead of in the handshake.
    # (redis 7 closes without an alert: SSLEOFError.)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        redis_ping(redis_tls_client_auth.port, ctx)
    ctx.load_cert_chain(tls_pki.client.cert, tls_pki.client.key)
    assert redis_ping(redis_tls_client_auth.port, ctx) == b"+PONG\r\n"


# ---------------------------------------------------------------- STARTTLS


def test_smtp_starttls_yields_the_configured_certificate(smtp_server, tls_pki):
    with smtplib.SMTP("127.0.0.1", smtp_server.ports["smtp"], timeout=10) as smtp:
        code, _ = smtp.ehlo("client.test")
        assert code == 250 and smtp.has_extn("starttls")
        code, _ = smtp.starttls(context=trusting(tls_pki.ca))
        assert code == 220
        assert smtp.sock.getpeercert(binary_form=True) == tls_pki.valid.der
        assert smtp.noop()[0] == 250


def test_smtps_implicit_tls(smtp_server, tls_pki):
    with smtplib.SMTP_SSL(
        "localhost", smtp_server.ports["smtps"], context=trusting(tls_pki.ca), timeout=10
    ) as s:
        assert s.sock.getpeercert(binary_form=True) == tls_pki.valid.der
        assert s.noop()[0] == 250


def test_imap_starttls_yields_the_configured_certificate(dovecot_server, tls_pki):
    with imaplib.IMAP4("127.0.0.1", dovecot_server.ports["imap"], timeout=10) as imap:
        assert "STARTTLS" in imap.capabilities
        assert imap.starttls(ssl_context=trusting(tls_pki.ca))[0] == "OK"
        assert imap.sock.getpeercert(binary_form=True) == tls_pki.valid.der
        assert imap.login("alice", dovecot_server.extra["password"])[0] == "OK"
        assert imap.select("INBOX")[0] == "OK"


def test_pop3_starttls_yields_the_configured_certificate(dovecot_server, tls_pki):
    pop = poplib.POP3("127.0.0.1", dovecot_server.ports["pop3"], timeout=10)
    try:
        assert pop.stls(context=trusting(tls_pki.ca)).startswith(b"+OK")
        assert pop.sock.getpeercert(binary_form=True) == tls_pki.valid.der
    finally:
        pop.quit()


def test_imaps_and_pop3s_implicit_tls(dovecot_server, tls_pki):
    ctx = trusting(tls_pki.ca)
    with imaplib.IMAP4_SSL("localhost", dovecot_server.ports["imaps"], ssl_context=ctx, timeout=10) as imap:
        assert imap.sock.getpeercert(binary_form=True) == tls_pki.valid.der
    pop = poplib.POP3_SSL("localhost", dovecot_server.ports["pop3s"], context=ctx, timeout=10)
    try:
        assert pop.sock.getpeercert(binary_form=True) == tls_pki.valid.der
    finally:
        pop.quit()


def test_postgres_ssl_request_then_the_configured_certificate(postgres_server, tls_pki):
    for host in postgres_server.hosts:
        s, answer = starttls_daemons.pg_ssl_request(host, postgres_server.port, timeout=5)
        with s:
            assert answer == b"S"
            with trusting(tls_pki.ca).wrap_socket(s, server_hostname="localhost") as t:
                assert t.getpeercert(binary_form=True) == tls_pki.valid.der


# ---------------------------------------------------------------- plain services


def test_memcached_answers_version(memcached_server):
    for host in memcached_server.hosts:
        with socket.create_connection((host, memcached_server.port), timeout=5) as s:
            s.sendall(b"version\r\n")
            assert re.fullmatch(rb"VERSION \d+\.\d+\.\d+\r\n", s.recv(64))


def test_ssh_banner_server_sends_its_banner(ssh_banner_server):
    with socket.create_connection(ssh_banner_server.address, timeout=5) as s:
        assert s.recv(64) == b"SSH-2.0-socketkit_test\r\n"
        s.sendall(b"SSH-2.0-client\r\n")


def test_stalled_server_never_completes_a_handshake(stalled_server):
    with socket.create_connection(stalled_server.address, timeout=0.3) as s:
        with pytest.raises(TimeoutError):
            daemons.insecure_context().wrap_socket(s)


def test_a_daemon_stops_by_its_pid(tmp_path):
    if daemons.find_binary("memcached") is None:
        pytest.skip("memcached is not installed (apt-get install memcached)")
    with daemons.start_memcached(tmp_path / "m") as svc:
        pid = svc.pid
        assert svc.daemon.alive()
    assert not svc.daemon.alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_ci_runs_the_readme_test_command():
    # CI must install the same daemons a developer does, or a fixture that
    # skips locally would pass unnoticed in CI (or the reverse).
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    command = re.search(r"^apt-get update .*python -m pytest$", readme, re.M)
    assert command is not None
    assert command.group(0) in (root / ".ci" / "run").read_text().splitlines()
    for package in ("nginx", "postfix", "dovecot-imapd", "dovecot-pop3d", "postgresql", "memcached"):
        assert f" {package} " in command.group(0)
