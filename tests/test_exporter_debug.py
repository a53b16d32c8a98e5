"""``/probe?...&debug=true`` and ``probe_tls_cipher_info``.

debug=true is checked against the real blackbox_exporter (Debian's
``prometheus-blackbox-exporter``) on the same targets and the same
``blackbox.yml``: the same content type, the same three sections, log
lines in its logfmt with the same keys, messages and levels in the same
order, metrics that parse and agree, and the module in the config's
layout. probe_tls_cipher_info (label ``cipher``, the IANA name as Go's
tls.CipherSuiteName writes it) is checked against what the TLS server
itself negotiated: Debian's blackbox_exporter (0.23) predates the metric,
and upstream sets it only in its http prober.
"""

from __future__ import annotations

import shlex
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")
yaml = pytest.importorskip("yaml")

from peers import closed_tcp_port as closed_port  # noqa: E402
from test_exporter import exporter, samples  # noqa: E402
from test_exporter_prometheus import BLACKBOX, blackbox_yml, free_port, http_get, poll, process  # noqa: E402

SECTIONS = (
    "Logs for the probe:\n",
    "\n\n\nMetrics that would have been returned:\n",
    "\n\n\nModule configuration:\n",
)


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def logfmt(line: str) -> list[tuple[str, str]]:
    """go-logfmt's ``k=v k="quoted v"`` as pairs (shlex reads the quotes)."""
    lex = shlex.shlex(line, posix=True)
    lex.whitespace_split = True
    lex.commenters = ""
    pairs = []
    for token in lex:
        key, sep, value = token.partition("=")
        assert sep, (token, line)
        pairs.append((key, value))
    return pairs


def debug_sections(text: str) -> tuple[list[list[tuple[str, str]]], dict[str, float], dict[str, object]]:
    """The three sections: parsed log lines, metric samples, module YAML."""
    assert text.startswith(SECTIONS[0]), text
    rest = text[len(SECTIONS[0]) :]
    logs, _, rest = rest.partition(SECTIONS[1])
    metrics, sep, module = rest.partition(SECTIONS[2])
    assert sep, text
    return [logfmt(line) for line in logs.splitlines()], samples(metrics), yaml.safe_load(module)


def banner(conn: socket.socket) -> None:
    conn.sendall(b"-ERR not yet\r\nSSH-2.0-test\r\n")
    f = conn.makefile("rb")
    assert f.readline() == b"hello\n"


@pytest.mark.skipif(BLACKBOX is None, reason="prometheus-blackbox-exporter is not installed")
def test_debug_output_matches_blackbox_exporter(tmp_path: Path, nginx_tls, tls_pki, tcp_peer) -> None:
    config = blackbox_yml(tls_pki.ca.cert)
    config["modules"]["banner"] = {  # type: ignore[index]
        "prober": "tcp",
        "timeout": "5s",
        "tcp": {"preferred_ip_protocol": "ip4", "query_response": [{"expect": "^SSH-2"}, {"send": "hello"}]},
    }
    config["modules"]["banner_mismatch"] = {  # type: ignore[index]
        "prober": "tcp",
        "timeout": "5s",
        "tcp": {"preferred_ip_protocol": "ip4", "query_response": [{"expect": "^\\+OK"}]},
    }
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text(yaml.safe_dump(config))
    holder = socket.create_server(("127.0.0.1", 0), backlog=1024)
    ssh = tcp_peer(banner)
    err = tcp_peer(lambda c: c.sendall(b"-ERR go away\r\n"))
    cases = [
        ("tcp_connect", f"127.0.0.1:{holder.getsockname()[1]}", 1.0),
        ("tcp_connect", f"127.0.0.1:{closed_port()}", 0.0),
        ("tls_connect", f"localhost:{nginx_tls.ports['valid']}", 1.0),
        ("tls_connect", f"localhost:{nginx_tls.ports['expired']}", 0.0),
        ("banner", ssh.addr_str, 1.0),
        ("banner_mismatch", err.addr_str, 0.0),
    ]
    port = free_port()
    argv = [str(BLACKBOX), f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}"]
    with holder, exporter(yaml.safe_load(cfg.read_text())) as ours, process(argv, tmp_path / "bb.log") as bb:

        def healthy() -> bool:
            assert bb.poll() is None, (tmp_path / "bb.log").read_text()
            return bool(http_get(f"http://127.0.0.1:{port}/-/healthy"))

        poll("blackbox_exporter", healthy)
        theirs_base = f"http://127.0.0.1:{port}"
        for module, target, expected in cases:
            q = f"/probe?target={target}&module={module}&debug=true"
            t_code, t_type, t_text = fetch(theirs_base + q)
            m_code, m_type, m_text = fetch(ours + q)
            assert m_code == t_code == 200 and m_type == t_type == "text/plain", (module, m_type, t_type)
            t_logs, t_metrics, t_module = debug_sections(t_text)
            m_logs, m_metrics, m_module = debug_sections(m_text)
            case = (module, target, m_text, t_text)
            # The same story, line by line: keys, messages, levels.
            assert [[k for k, _ in line] for line in m_logs] == [[k for k, _ in line] for line in t_logs], (
                case
            )
            fields = ("module", "target", "level", "msg")
            assert [[dict(line)[k] for k in fields] for line in m_logs] == [
                [dict(line)[k] for k in fields] for line in t_logs
            ], case
            # Where the same values are knowable, they agree.
            for m_line, t_line in zip(m_logs, t_logs, strict=True):
                for key in (
                    "ip",
                    "ip_protocol",
                    "probe",
                    "timeout_seconds",
                    "entry_number",
                    "line",
                    "regexp",
                ):
                    assert dict(m_line).get(key) == dict(t_line).get(key), (key, case)
                # ts is Go's RFC3339Nano in UTC; caller is file:line.
                assert dict(m_line)["ts"].endswith("Z") and dict(m_line)["ts"][:4] == dict(t_line)["ts"][:4]
                assert ":" in dict(m_line)["caller"]
            # The metrics that a plain probe returns, and blackbox's agree.
            assert m_metrics["probe_success"] == t_metrics["probe_success"] == expected, case
            for name in ("probe_ip_protocol", "probe_ip_addr_hash", "probe_failed_due_to_regex"):
                assert m_metrics.get(name) == t_metrics.get(name), (name, case)
            assert set(t_metrics) <= set(m_metrics), case
            # The module, in the config's layout, the defaults filled in.
            for key in ("prober", "timeout"):
                assert m_module[key] == t_module[key], case
            for key in ("preferred_ip_protocol", "ip_protocol_fallback", "tls", "query_response"):
                assert m_module["tcp"].get(key) == t_module["tcp"].get(key), (key, case)  # type: ignore[attr-defined]
            # Without debug (or with any other value) the answer is the exposition.
            for plain in ("", "&debug=false", "&debug=1"):
                code, ctype, text = fetch(f"{ours}/probe?target={target}&module={module}{plain}")
                assert code == 200 and ctype.startswith("text/plain; version=") and "Logs for" not in text
                assert samples(text)["probe_success"] == expected
        # A bad request stays a 400 with its reason, debug or not, in both.
        for q in ("module=nope&target=127.0.0.1:1&debug=true", "module=tcp_connect&debug=true"):
            t_code, _, t_text = fetch(f"{theirs_base}/probe?{q}")
            m_code, _, m_text = fetch(f"{ours}/probe?{q}")
            assert m_code == t_code == 400
            assert m_text.strip().replace("'", '"') == t_text.strip(), (m_text, t_text)


def test_debug_output_of_socketkits_own_probers(udp_echo) -> None:
    cfg = {
        "modules": {
            "echo": {"prober": "udp", "timeout": "2s", "udp": {"payload": "hi", "expect": "^h"}},
            "tp": {"prober": "tcping", "timeout": "5s", "tcping": {"count": 2, "interval": "10ms"}},
        }
    }
    with exporter(cfg) as base:
        code, ctype, text = fetch(
            f"{base}/probe?target=127.0.0.1:{udp_echo.address[1]}&module=echo&debug=true"
        )
        assert code == 200 and ctype == "text/plain"
        logs, metrics, module = debug_sections(text)
        msgs = [dict(line)["msg"] for line in logs]
        assert msgs[0] == "Beginning probe" and msgs[-1] == "Probe succeeded", msgs
        assert "Reply received" in msgs and "Regexp matched" in msgs
        assert metrics["probe_success"] == 1.0 and metrics["probe_udp_reply_bytes"] == 2.0
        assert module == {
            "prober": "udp",
            "timeout": "2s",
            "udp": {
                "preferred_ip_protocol": "ip6",
                "ip_protocol_fallback": True,
                "payload": "hi",
                "expect": "^h",
            },
        }
        code, _, text = fetch(f"{base}/probe?target=127.0.0.1:{closed_port()}&module=tp&debug=true")
        logs, metrics, _ = debug_sections(text)
        levels = {dict(line)["msg"]: dict(line)["level"] for line in logs}
        assert levels["No handshake completed"] == "error" and levels["Probe failed"] == "error", levels
        assert metrics["probe_success"] == 0.0 and metrics["probe_tcping_loss_ratio"] == 1.0


def iana_name(openssl_name: str) -> str:
    """OpenSSL's name of a suite as IANA spells it (``openssl ciphers -stdname``)."""
    out = subprocess.run(
        ["openssl", "ciphers", "-stdname", "ALL"], capture_output=True, text=True, check=True
    )
    for line in out.stdout.splitlines():
        std, _, rest = line.partition(" - ")
        if rest.split()[0] == openssl_name:
            return std.strip()
    raise AssertionError(f"openssl does not know {openssl_name}")


@pytest.mark.parametrize(
    ("version", "suites"),
    [
        ("TLS13", None),
        ("TLS12", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"),
        ("TLS12", None),
    ],
)
def test_cipher_info_names_the_suite_the_server_negotiated(tls_pki, version: str, suites: str | None) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_pki.valid.chain, tls_pki.valid.key)
    if suites:
        ctx.set_ciphers(suites)
    negotiated: list[tuple[str, str]] = []
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = srv.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            name, proto, _ = tls.cipher()  # type: ignore[misc]
            negotiated.append((name, proto))
            tls.recv(1)

    t = threading.Thread(target=serve)
    t.start()
    cfg = {
        "modules": {
            "t": {
                "prober": "tcp",
                "timeout": "5s",
                "tcp": {
                    "tls": True,
                    "tls_config": {
                        "ca_file": str(tls_pki.ca.cert),
                        "server_name": "localhost",
                        "min_version": version,
                        "max_version": version,
                    },
                },
            }
        }
    }
    try:
        with exporter(cfg) as base:
            m = samples(fetch(f"{base}/probe?target=127.0.0.1:{srv.getsockname()[1]}&module=t")[2])
    finally:
        t.join(10)
        srv.close()
    assert m["probe_success"] == 1.0
    name, proto = negotiated[0]
    assert proto == {"TLS13": "TLSv1.3", "TLS12": "TLSv1.2"}[version]
    cipher = [k for k in m if k.startswith("probe_tls_cipher_info{")]
    assert cipher == [f'probe_tls_cipher_info{{cipher="{iana_name(name)}"}}'], (cipher, name)
    assert m[cipher[0]] == 1.0
    if version == "TLS12":
        assert iana_name(name).startswith("TLS_ECDHE_")  # not the OpenSSL spelling
