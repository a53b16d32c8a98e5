"""socketkit.exporter (issue 13): /probe answers blackbox_exporter's metric
names (parsed back with prometheus_client's own parser), its config is
blackbox.yml's layout read strictly, bad requests get 400 with a reason,
the scrape-timeout header bounds a probe, SIGHUP with a broken config
keeps the old one, 200 concurrent /probe requests all get answers."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")
pytest.importorskip("yaml")

from _probe_util import full_backlog, listeners
from peers import closed_tcp_port as closed_port
from prometheus_client.parser import text_string_to_metric_families

from socketkit.exporter import ConfigError, Exporter, parse_config
from socketkit.exporter.config import parse_duration
from socketkit.exporter.server import probe_timeout

#: blackbox_exporter's documented tcp examples (example.yml), unchanged.
BLACKBOX_TCP = """
modules:
  tcp_connect:
    prober: tcp
  pop3s_banner:
    prober: tcp
    tcp:
      query_response:
      - expect: "^+OK"
      tls: true
      tls_config:
        insecure_skip_verify: false
  irc_banner:
    prober: tcp
    tcp:
      query_response:
      - send: "NICK prober"
      - send: "USER prober prober prober :prober"
      - expect: "PING :([^ ]+)"
        send: "PONG ${1}"
      - expect: "^:[^ ]+ 001"
  http_2xx:
    prober: http
  icmp:
    prober: icmp
"""


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text: str) -> dict[str, float]:
    """name{labels} -> value, through prometheus_client's parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


@contextmanager
def exporter(config: object = None) -> Iterator[str]:
    with Exporter(config, "127.0.0.1:0") as exp:
        host, port = exp.address
        yield f"http://{host}:{port}"


def probe(base: str, target: str, module: str, **headers: str) -> tuple[int, str]:
    return get(f"{base}/probe?target={target}&module={module}", headers)


def test_tcp_open_and_closed_with_blackbox_names() -> None:
    with exporter(parse_config_doc(BLACKBOX_TCP)) as base, listeners(1) as (port,):
        code, text = probe(base, f"127.0.0.1:{port}", "tcp_connect")
        assert code == 200
        m = samples(text)
        assert m["probe_success"] == 1.0
        assert 0 < m["probe_duration_seconds"] < 5
        assert m["probe_ip_protocol"] == 4.0 and m["probe_failed_due_to_regex"] == 0.0
        assert "probe_dns_lookup_time_seconds" in m and "probe_ip_addr_hash" in m
        m = samples(probe(base, f"127.0.0.1:{closed_port()}", "tcp_connect")[1])
        assert m["probe_success"] == 0.0


def parse_config_doc(text: str) -> dict[str, object]:
    import yaml

    doc = yaml.safe_load(text)
    parse_config(doc)  # loads as it is
    return doc  # type: ignore[no-any-return]


def test_query_response_expect_send_and_group_expansion(tcp_peer) -> None:
    def irc(conn: socket.socket) -> None:
        f = conn.makefile("rwb")
        assert f.readline() == b"NICK prober\n"
        assert f.readline() == b"USER prober prober prober :prober\n"
        f.write(b"PING :abc123\r\n")
        f.flush()
        assert f.readline() == b"PONG abc123\n"
        f.write(b":server 001 prober :welcome\r\n")
        f.flush()

    peer = tcp_peer(irc)
    with exporter(parse_config_doc(BLACKBOX_TCP)) as base:
        m = samples(probe(base, f"127.0.0.1:{peer.address[1]}", "irc_banner")[1])
    assert m["probe_success"] == 1.0 and m["probe_failed_due_to_regex"] == 0.0


def test_a_reply_that_never_matches_fails_due_to_regex(tcp_peer) -> None:
    peer = tcp_peer(lambda c: c.sendall(b"-ERR go away\r\n"))
    cfg = {"modules": {"pop3": {"prober": "tcp", "tcp": {"query_response": [{"expect": "^\\+OK"}]}}}}
    with exporter(cfg) as base:
        m = samples(probe(base, f"127.0.0.1:{peer.address[1]}", "pop3")[1])
    assert m["probe_success"] == 0.0 and m["probe_failed_due_to_regex"] == 1.0


def test_tls_module_reports_certificate_and_version(nginx_tls, tls_pki) -> None:
    cfg = {
        "modules": {
            "tls": {"prober": "tcp", "tcp": {"tls": True, "tls_config": {"ca_file": str(tls_pki.ca.cert)}}},
            "tls_untrusted": {"prober": "tcp", "tcp": {"tls": True}},
            "tls_insecure": {
                "prober": "tcp",
                "tcp": {"tls": True, "tls_config": {"insecure_skip_verify": True}},
            },
        }
    }
    port = nginx_tls.ports["valid"]
    with exporter(cfg) as base:
        m = samples(probe(base, f"localhost:{port}", "tls")[1])
        assert m["probe_success"] == 1.0
        expiry = tls_pki.valid.not_after.timestamp() if hasattr(tls_pki.valid, "not_after") else None
        assert m["probe_ssl_earliest_cert_expiry"] > time.time()
        if expiry is not None:
            assert m["probe_ssl_earliest_cert_expiry"] == pytest.approx(expiry, abs=1)
        assert any(k.startswith("probe_tls_version_info{") and 'version="TLS 1.' in k for k in m)
        assert samples(probe(base, f"localhost:{port}", "tls_untrusted")[1])["probe_success"] == 0.0
        assert samples(probe(base, f"localhost:{port}", "tls_insecure")[1])["probe_success"] == 1.0


def test_udp_prober_payload_and_expect(udp_echo) -> None:
    cfg = {
        "modules": {
            "echo": {"prober": "udp", "timeout": "2s", "udp": {"payload": "hello", "expect": "^hel"}},
            "nomatch": {"prober": "udp", "timeout": "2s", "udp": {"payload": "hello", "expect": "bye"}},
            "hex": {"prober": "udp", "timeout": "2s", "udp": {"payload_hex": "00ff"}},
        }
    }
    target = f"127.0.0.1:{udp_echo.address[1]}"
    with exporter(cfg) as base:
        m = samples(probe(base, target, "echo")[1])
        assert m["probe_success"] == 1.0 and m["probe_udp_reply_bytes"] == 5.0
        assert m["probe_failed_due_to_regex"] == 0.0
        m = samples(probe(base, target, "nomatch")[1])
        assert m["probe_success"] == 0.0 and m["probe_failed_due_to_regex"] == 1.0
        assert samples(probe(base, target, "hex")[1])["probe_udp_reply_bytes"] == 2.0
        m = samples(probe(base, f"127.0.0.1:{closed_port()}", "echo")[1])
        assert m["probe_success"] == 0.0


def test_tcping_prober_statistics_and_histogram() -> None:
    cfg = {
        "modules": {
            "tp": {
                "prober": "tcping",
                "timeout": "5s",
                "tcping": {"count": 4, "interval": "10ms", "buckets": [0.001, 0.01, 1]},
            },
            "from_lo": {
                "prober": "tcping",
                "tcping": {"count": 1, "source_ip_address": "127.0.0.1", "preferred_ip_protocol": "ip4"},
            },
        }
    }
    with exporter(cfg) as base, listeners(1) as (port,):
        m = samples(probe(base, f"127.0.0.1:{port}", "tp")[1])
        assert m["probe_success"] == 1.0
        assert m["probe_tcping_packets_sent"] == 4.0 and m["probe_tcping_loss_ratio"] == 0.0
        for stat in ("min", "avg", "max", "stdev"):
            assert m[f'probe_tcping_rtt_seconds{{stat="{stat}"}}'] >= 0
        assert m["probe_tcping_rtt_histogram_seconds_count"] == 4.0
        assert m['probe_tcping_rtt_histogram_seconds_bucket{le="+Inf"}'] == 4.0
        assert '{le="0.01"}' in "".join(m)
        assert samples(probe(base, f"127.0.0.1:{port}", "from_lo")[1])["probe_success"] == 1.0
        m = samples(probe(base, f"127.0.0.1:{closed_port()}", "tp")[1])
        assert m["probe_success"] == 0.0 and m["probe_tcping_loss_ratio"] == 1.0


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("module=tcp_connect", "Target parameter is missing"),
        ("target=127.0.0.1:1&module=nope", "Unknown module 'nope'"),
        ("target=127.0.0.1:1", "Unknown module 'http_2xx'"),
        ("target=127.0.0.1&module=tcp_connect", "Bad target"),
        ("target=127.0.0.1:99999&module=tcp_connect", "Bad target"),
        ("target=127.0.0.1:1&module=icmp", "not supported"),
    ],
)
def test_bad_requests_get_400_with_a_reason(query: str, reason: str) -> None:
    cfg = {"modules": {"tcp_connect": {"prober": "tcp"}, "icmp": {"prober": "icmp"}}}
    with exporter(cfg) as base:
        code, text = get(f"{base}/probe?{query}")
        assert code == 400 and reason in text, text
        code, text = get(f"{base}/metrics")
        assert code == 200 and samples(text)["socketkit_exporter_bad_requests_total"] == 1.0


def test_the_scrape_timeout_header_bounds_the_probe() -> None:
    assert probe_timeout(None, "10") == 9.5
    assert probe_timeout(5.0, "10") == 5.0
    assert probe_timeout(None, None) == 119.5
    with full_backlog() as port, exporter({"modules": {"t": {"prober": "tcp", "timeout": "60s"}}}) as base:
        start = time.monotonic()
        code, text = probe(base, f"127.0.0.1:{port}", "t", **{"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
        took = time.monotonic() - start
        assert code == 200 and samples(text)["probe_success"] == 0.0
        assert 0.8 < took < 1.5
        code, text = probe(base, "127.0.0.1:1", "t", **{"X-Prometheus-Scrape-Timeout-Seconds": "soon"})
        assert code == 400 and "Scrape-Timeout" in text


def test_config_is_read_strictly() -> None:
    assert parse_duration("1m30s", "x") == 90.0 and parse_duration("250ms", "x") == 0.25
    bad = [
        ({"modules": {"m": {"prober": "tcp", "tcp": {"tsl": True}}}}, "unknown field 'tsl'"),
        ({"modules": {"m": {"prober": "tcp", "timeout": "5 sec"}}}, "not a duration"),
        ({"modules": {"m": {"prober": "ftp"}}}, "unknown prober"),
        ({"modules": {"m": {"prober": "tcp", "tcp": {"query_response": [{"expect": "("}]}}}}, "bad regular"),
        ({"modules": {"m": {"prober": "tcping", "tcping": {"buckets": [2, 1]}}}}, "increasing"),
        ({"modules": {"m": {"prober": "tcp", "tcp": {"preferred_ip_protocol": "ip5"}}}}, "ip4 or ip6"),
    ]
    for doc, reason in bad:
        with pytest.raises(ConfigError, match=re.escape(reason)):
            parse_config(doc)


def test_200_concurrent_probes_all_answer() -> None:
    # An accept queue that holds every connect (none is accepted).
    with exporter() as base, socket.create_server(("127.0.0.1", 0), backlog=1024) as srv:
        port = srv.getsockname()[1]
        url = f"{base}/probe?target=127.0.0.1:{port}&module=tcp_connect"
        with ThreadPoolExecutor(200) as pool:
            results = list(pool.map(lambda _: get(url), range(200)))
        assert all(code == 200 and samples(text)["probe_success"] == 1.0 for code, text in results)
        m = samples(get(f"{base}/metrics")[1])
        assert m['socketkit_exporter_probes_total{module="tcp_connect",result="success"}'] == 200.0
        assert get(f"{base}/-/healthy")[0] == 200


def _started(argv: list[str]) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "socketkit", "exporter", *argv, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.communicate(timeout=10)
    return proc, json.loads(line)


def test_cli_sighup_reloads_and_a_broken_config_keeps_the_old_one(tmp_path: Path) -> None:
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text(BLACKBOX_TCP)
    # One process: with several workers each reloads the file on its own
    # SIGHUP, so a worker may read the next edit (test_exporter_workers.py
    # covers reload in every worker, one worker at a time).
    proc, hello = _started(["--config", str(cfg), "--listen", "127.0.0.1:0", "--workers", "1"])
    base = f"http://{hello['listening']}"
    try:
        assert "irc_banner" in hello["modules"]  # type: ignore[operator]

        def reloads(ok: float) -> None:
            # Wait for this SIGHUP's reload itself: the success flag alone is
            # already 1 from the start, so a success is seen by its timestamp.
            key = "socketkit_exporter_config_last_reload_successful"
            stamp = "socketkit_exporter_config_last_reload_success_timestamp_seconds"
            before = samples(get(f"{base}/metrics")[1])
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while True:
                now = samples(get(f"{base}/metrics")[1])
                if now.get(key) == ok and (not ok or now[stamp] > before[stamp]):
                    break
                assert time.monotonic() < deadline, "no reload"
                time.sleep(0.05)

        cfg.write_text(BLACKBOX_TCP + "  added:\n    prober: tcp\n")
        reloads(1.0)
        assert probe(base, "127.0.0.1:1", "added")[0] == 200
        cfg.write_text("modules:\n  broken: {prober: tcp, timeout: soon}\n")
        reloads(0.0)
        assert probe(base, "127.0.0.1:1", "added")[0] == 200  # the old config is in force
        assert probe(base, "127.0.0.1:1", "broken")[0] == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_cli_binds_loopback_by_default_and_refuses_a_bad_config(tmp_path: Path) -> None:
    proc, hello = _started(["--listen", ":0"])
    try:
        assert str(hello["listening"]).startswith("127.0.0.1:")
        assert hello["modules"] == ["tcp_connect", "tcping", "udp"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    bad = tmp_path / "bad.yml"
    bad.write_text("modules:\n  m: {prober: tcp, tcp: {tsl: true}}\n")
    r = subprocess.run(
        [sys.executable, "-m", "socketkit", "exporter", "--config", str(bad), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "unknown field 'tsl'" in r.stderr


def test_readme_and_ci_install_the_same_packages() -> None:
    root = Path(__file__).parent.parent
    readme = [line for line in (root / "README.md").read_text().splitlines() if "apt-get install" in line]
    ci = [line for line in (root / ".ci" / "run").read_text().splitlines() if "apt-get install" in line]
    assert readme and readme == ci
    assert "prometheus prometheus-blackbox-exporter" in ci[0]


def test_cli_help_documents_the_exporter() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "socketkit", "exporter", "--help"], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0
    for text in ("--config FILE", "127.0.0.1:9115", "examples:", "130 interrupted", "SIGTERM"):
        assert text in r.stdout, text
