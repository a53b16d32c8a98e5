"""Fixtures for the TLS and service-check tests: a test PKI and the real
daemons of daemons.py and starttls_daemons.py, each started once per
session, on first use, and stopped (by the PID we started) when the
session ends; the two in-process Python peers are per test. Registered from
conftest.py.

A fixture skips only when its daemon is not installed (or, for postfix
and dovecot, when not root); CI installs all of them (README's apt line).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import daemons
import pytest
import starttls_daemons
from daemons import Service, TlsSite
from peers import TcpPeer
from tls_pki import Pki, make_pki


def _launch(start: Callable[[], Service]) -> Service:
    try:
        return start()
    except (FileNotFoundError, PermissionError) as e:
        pytest.skip(str(e))
    except daemons.DaemonError as e:
        pytest.fail(str(e), pytrace=False)


def _start(start: Callable[[], Service]) -> Iterator[Service]:
    svc = _launch(start)
    try:
        yield svc
    finally:
        svc.stop()


def _serve(peer: TcpPeer) -> Iterator[TcpPeer]:
    try:
        yield peer
    finally:
        peer.stop()
    if peer.errors:
        raise peer.errors[0]


@pytest.fixture(scope="session")
def tls_pki(tmp_path_factory) -> Pki:
    """The test PKI (tls_pki.Pki): CA, valid RSA/EC/Ed25519, expired, wrong
    name, self-signed, intermediate + chain leaf, client CA + client cert,
    each with its paths and expected facts."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def daemon_dir() -> Iterator[Path]:
    """One directory for every daemon's config, data and log, that the
    users they drop to (postfix, dovecot, postgres) can enter."""
    d = daemons.world_readable_dir("socketkit-daemons-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def nginx_tls(tls_pki, daemon_dir) -> Iterator[Service]:
    """nginx with one TLS port per certificate kind: `.ports["valid"]`,
    "valid_ec", "valid_ed25519", "expired", "wrong_name", "self_signed",
    "chain" (leaf + intermediate), and "client_auth" (valid certificate,
    requires a client certificate from `tls_pki.client_ca`: without one
    nginx answers HTTP 400). Each listens on 127.0.0.1 and ::1.
    `.extra["certs"]` maps each port name to the tls_pki.Cert it presents."""
    certs = {**tls_pki.server_certs(), "client_auth": tls_pki.valid}
    sites = [TlsSite(name, c.chain, c.key) for name, c in tls_pki.server_certs().items()]
    sites.append(TlsSite("client_auth", tls_pki.valid.chain, tls_pki.valid.key, tls_pki.client_ca.cert))
    svc = _launch(lambda: daemons.start_nginx(sites, daemon_dir / "nginx"))
    svc.extra["certs"] = certs
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def nginx_tls_ports(tls_pki, daemon_dir) -> Iterator[Callable[[int], list[int]]]:
    """Factory: `nginx_tls_ports(n)` starts one more nginx listening on n
    TLS ports on 127.0.0.1 (valid certificate) and returns the ports; all
    are stopped at session end. benches/ call daemons.nginx_tls_ports."""
    started: list[Service] = []

    def start(n: int) -> list[int]:
        workdir = daemon_dir / f"nginx-ports-{len(started)}"
        pki = tls_pki.valid
        svc = _launch(lambda: daemons.nginx_tls_ports(n, pki.chain, pki.key, workdir=workdir))
        started.append(svc)
        return list(svc.ports.values())

    yield start
    for svc in started:
        svc.stop()


@pytest.fixture(scope="session")
def redis_tls(tls_pki, daemon_dir) -> Iterator[Service]:
    """redis-server, TLS only (`.port`), valid certificate, no client
    certificate asked."""
    yield from _start(
        lambda: daemons.start_redis_tls(daemon_dir / "redis-tls", tls_pki.valid.chain, tls_pki.valid.key)
    )


@pytest.fixture(scope="session")
def redis_tls_client_auth(tls_pki, daemon_dir) -> Iterator[Service]:
    """redis-server, TLS only, `tls-auth-clients yes` with
    `tls_pki.client_ca`: the handshake fails without `tls_pki.client`."""
    yield from _start(
        lambda: daemons.start_redis_tls(
            daemon_dir / "redis-tls-auth",
            tls_pki.valid.chain,
            tls_pki.valid.key,
            client_ca=tls_pki.client_ca.cert,
            client_cert=(tls_pki.client.cert, tls_pki.client.key),
        )
    )


@pytest.fixture(scope="session")
def smtp_server(tls_pki, daemon_dir) -> Iterator[Service]:
    """postfix: `.ports["smtp"]` (STARTTLS), `.ports["smtps"]` (implicit
    TLS), both with `tls_pki.valid`."""
    yield from _start(
        lambda: starttls_daemons.start_postfix(daemon_dir / "postfix", tls_pki.valid.chain, tls_pki.valid.key)
    )


@pytest.fixture(scope="session")
def dovecot_server(tls_pki, daemon_dir) -> Iterator[Service]:
    """dovecot: `.ports["imap"]`, `["pop3"]` (STARTTLS), `["imaps"]`,
    `["pop3s"]` (implicit TLS), with `tls_pki.valid`; any user, password
    `.extra["password"]`."""
    yield from _start(
        lambda: starttls_daemons.start_dovecot(daemon_dir / "dovecot", tls_pki.valid.chain, tls_pki.valid.key)
    )


@pytest.fixture(scope="session")
def postgres_server(tls_pki, daemon_dir) -> Iterator[Service]:
    """postgresql with ssl=on and `tls_pki.valid`: `.port`; user and
    database "postgres", trust auth."""
    yield from _start(
        lambda: starttls_daemons.start_postgres(
            daemon_dir / "postgres", tls_pki.valid.chain, tls_pki.valid.key
        )
    )


@pytest.fixture(scope="session")
def memcached_server(daemon_dir) -> Iterator[Service]:
    """memcached (plain TCP): `.port` on 127.0.0.1 and ::1."""
    yield from _start(lambda: daemons.start_memcached(daemon_dir / "memcached"))


# The two Python peers live in this process, so they are per test: a
# session-long thread would accept the connections of other tests' port
# scans and move the fd counts that test_leaks compares.
@pytest.fixture
def ssh_banner_server() -> Iterator[TcpPeer]:
    """Sends daemons.SSH_BANNER on connect (127.0.0.1): `.address`."""
    yield from _serve(daemons.banner_server())


@pytest.fixture
def stalled_server() -> Iterator[TcpPeer]:
    """Accepts on 127.0.0.1 and never answers (a stalled TLS handshake)."""
    yield from _serve(daemons.stalled_server())
