"""tls_check / tls_check_many / tls_check_iter (issue 11) against nginx's
TLS ports, postfix/dovecot/postgres STARTTLS (tls_fixtures.py): states,
certificate facts whether or not they verify, exports."""

from __future__ import annotations

import json
import pickle

import pytest
from peers import closed_tcp_port

import socketkit
from socketkit import TlsConfig, TlsResult, TlsResults


def trusting(pki) -> TlsConfig:
    return TlsConfig(ca_file=pki.ca.cert)


@pytest.mark.parametrize(
    ("kind", "state", "reason"),
    [
        ("valid", "valid", None),
        ("chain", "valid", None),
        ("expired", "invalid", "certificate expired"),
        ("wrong_name", "invalid", "hostname mismatch"),
        ("self_signed", "invalid", "self-signed"),
    ],
)
def test_states_and_facts(nginx_tls, tls_pki, kind, state, reason):
    r = socketkit.tls_check(("localhost", nginx_tls.ports[kind]), tls=trusting(tls_pki))
    assert r.state == state and r.ok == (state == "valid"), r
    assert r.verify_error == reason
    want = nginx_tls.extra["certs"][kind]
    # The facts are there whether or not the certificate verified.
    assert r.cert is not None and r.cert.sha256 == want.sha256
    assert r.cert.subject == want.subject and r.cert.serial == want.serial
    assert r.chain[0] == r.cert
    assert r.days_left == pytest.approx(r.cert.days_left, abs=0.01)
    assert (r.days_left < 0) == (kind == "expired")
    assert r.version in ("TLSv1.2", "TLSv1.3") and r.cipher
    t = r.timings
    assert t["tls_ms"] is not None and t["dialogue_ms"] is None
    assert t["total_ms"] >= t["connect_ms"] + t["tls_ms"]
    assert r.tls_info().cert == r.cert


def test_unknown_issuer_with_system_roots(nginx_tls, tls_pki):
    r = socketkit.tls_check(f"localhost:{nginx_tls.ports['valid']}")
    assert r.state == "invalid" and r.verify_error == "unknown issuer"
    assert r.cert.sha256 == tls_pki.valid.sha256


def test_down_endpoints_and_bad_arguments(stalled_server):
    r = socketkit.tls_check(("127.0.0.1", closed_tcp_port()))
    assert r.state == "closed" and r.cert is None and r.chain == ()
    r = socketkit.tls_check(stalled_server.address, timeout=0.2)
    assert r.state == "error" and r.error, r
    with pytest.raises(TypeError, match="tls"):
        socketkit.tls_check("127.0.0.1:1", tls=False)
    with pytest.raises(ValueError, match="starttls"):
        socketkit.tls_check("127.0.0.1:1", starttls="gopher")


@pytest.mark.parametrize(
    ("fixture", "proto"), [("smtp_server", "smtp"), ("dovecot_server", "imap"), ("dovecot_server", "pop3")]
)
def test_starttls_certificate_is_the_configured_one(request, tls_pki, fixture, proto):
    svc = request.getfixturevalue(fixture)
    r = socketkit.tls_check(
        ("localhost", svc.ports[proto]), starttls=proto, tls=trusting(tls_pki), timeout=10
    )
    assert r.state == "valid", r
    assert r.cert.sha256 == tls_pki.valid.sha256


def test_starttls_postgres(postgres_server, tls_pki):
    r = socketkit.tls_check(
        ("localhost", postgres_server.port), starttls="postgres", tls=trusting(tls_pki), timeout=10
    )
    assert r.state == "valid", r
    assert r.cert.sha256 == tls_pki.valid.sha256


def test_many_iter_and_exports(nginx_tls, tls_pki):
    kinds = ["valid", "expired", "self_signed"]
    targets = [("localhost", nginx_tls.ports[k]) for k in kinds] + [("127.0.0.1", closed_tcp_port())]
    calls = []
    res = socketkit.tls_check_many(targets, tls=trusting(tls_pki), progress=lambda d, t: calls.append((d, t)))
    assert isinstance(res, TlsResults)
    assert [r.state for r in res] == ["valid", "invalid", "invalid", "closed"]
    assert calls[-1] == (4, 4)
    assert len(res.valid) == 1 and len(res.invalid) == 2 and len(res.errors) == 1
    assert res.counts == {"valid": 1, "invalid": 2, "closed": 1} and not res.all_ok
    streamed = list(socketkit.tls_check_iter(targets, tls=trusting(tls_pki)))
    assert sorted(r.state for r in streamed) == ["closed", "invalid", "invalid", "valid"]
    rows = json.loads(res.to_json())
    assert rows[0]["sha256"] == tls_pki.valid.sha256 and rows[1]["verify_error"] == "certificate expired"
    one = json.loads(res[0].to_json())
    assert one["chain"][0]["sha256"] == tls_pki.valid.sha256
    header = res.to_csv().splitlines()[0].split(",")
    assert header[:4] == ["host", "address", "port", "state"] and "days_left" in header
    assert "<table" in res._repr_html_() and "invalid" in repr(res)
    assert "TlsResult(localhost:" in repr(res[0])
    assert pickle.loads(pickle.dumps(res[1])) == res[1]
    assert isinstance(res[1], TlsResult) and isinstance(res[:2], TlsResults)


def test_no_fd_left_behind(nginx_tls, tls_pki, stalled_server):
    import gc
    import os

    targets = [("localhost", nginx_tls.ports["valid"]), ("localhost", nginx_tls.ports["expired"])]
    socketkit.tls_check_many(targets, tls=trusting(tls_pki))  # warm up (roots read)
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        socketkit.tls_check_many(targets * 3, tls=trusting(tls_pki))
        socketkit.tls_check(stalled_server.address, timeout=0.05)
        socketkit.check(targets[0], tls=trusting(tls_pki), service="http")
        assert len(list(socketkit.tls_check_iter(targets * 3, tls=trusting(tls_pki)))) == 6
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before


def test_many_progress_error_stops_the_run(nginx_tls, tls_pki, stalled_server):
    # The first progress call (0, total) raises: the stalled handshake is
    # abandoned rather than waited for (30 s), and the error is the caller's.
    def refuse(done: int, total: int) -> None:
        raise RuntimeError(f"stop at {done}/{total}")

    targets = [("localhost", nginx_tls.ports["valid"]), stalled_server.address]
    with pytest.raises(RuntimeError, match="stop at 0/2"):
        socketkit.tls_check_many(targets, tls=trusting(tls_pki), timeout=30, progress=refuse)

    # Raising at the end (every result converted) still raises.
    def last(done: int, total: int) -> None:
        if done == total:
            raise RuntimeError("at the end")

    with pytest.raises(RuntimeError, match="at the end"):
        socketkit.tls_check_many(targets[:1] * 3, tls=trusting(tls_pki), progress=last)
