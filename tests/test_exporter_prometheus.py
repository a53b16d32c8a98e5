"""The exporter under a real Prometheus (Debian's ``prometheus``): the test
starts it with a generated scrape config, blackbox_exporter's documented
relabelling, pointed at ``socketkit exporter`` for an open port, a closed
port, a TLS port (nginx) and a UDP echo, and reads ``probe_success`` and
``probe_duration_seconds`` back through Prometheus's query API. The same
targets through the real blackbox_exporter (Debian's
``prometheus-blackbox-exporter``), given the same ``blackbox.yml``, give
the same ``probe_success``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")
yaml = pytest.importorskip("yaml")

from peers import closed_tcp_port as closed_port  # noqa: E402
from test_exporter import samples  # noqa: E402

PROMETHEUS = shutil.which("prometheus")
BLACKBOX = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(what: str, cond: Callable[[], object], within: float = 60.0) -> object:
    """Poll ``cond`` until it returns something truthy (a readiness or a
    first scrape is waited for by looking, never by sleeping a guess)."""
    deadline = time.monotonic() + within
    while True:
        try:
            got = cond()
        except OSError:
            got = None
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


@contextmanager
def process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()  # by the PID we started
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def socketkit_exporter(config: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "socketkit", "exporter", "--config", str(config), "--listen", ":0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        yield str(json.loads(line)["listening"])
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def blackbox_yml(ca_file: Path) -> dict[str, object]:
    """tcp modules as blackbox_exporter documents them (no socketkit-only
    keys), loaded unchanged by both exporters."""
    return {
        "modules": {
            "tcp_connect": {"prober": "tcp", "timeout": "5s", "tcp": {"preferred_ip_protocol": "ip4"}},
            "tls_connect": {
                "prober": "tcp",
                "timeout": "5s",
                "tcp": {
                    "preferred_ip_protocol": "ip4",
                    "tls": True,
                    "tls_config": {"ca_file": str(ca_file), "server_name": "localhost"},
                },
            },
        }
    }


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (README's apt line)")
def test_prometheus_scrapes_the_exporter(tmp_path: Path, nginx_tls, tls_pki, udp_echo) -> None:
    config = blackbox_yml(tls_pki.ca.cert)
    config["modules"]["udp_echo"] = {  # type: ignore[index]
        "prober": "udp",
        "timeout": "2s",
        "udp": {"payload": "ping", "expect": "ping", "preferred_ip_protocol": "ip4"},
    }
    cfg = tmp_path / "socketkit.yml"
    cfg.write_text(yaml.safe_dump(config))
    holder = socket.create_server(("127.0.0.1", 0), backlog=1024)
    targets = {
        "open": ("tcp_connect", f"127.0.0.1:{holder.getsockname()[1]}"),
        "closed": ("tcp_connect", f"127.0.0.1:{closed_port()}"),
        "tls": ("tls_connect", f"127.0.0.1:{nginx_tls.ports['valid']}"),
        "udp": ("udp_echo", f"127.0.0.1:{udp_echo.address[1]}"),
    }
    with holder, socketkit_exporter(cfg) as exporter:
        scrape = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": "/probe",
                    "params": {"module": [module]},
                    "static_configs": [{"targets": [target]}],
                    "relabel_configs": [
                        {"source_labels": ["__address__"], "target_label": "__param_target"},
                        {"source_labels": ["__param_target"], "target_label": "instance"},
                        {"target_label": "__address__", "replacement": exporter},
                    ],
                }
                for job, (module, target) in targets.items()
            ],
        }
        prom_cfg = tmp_path / "prometheus.yml"
        prom_cfg.write_text(yaml.safe_dump(scrape))
        port = free_port()
        argv = [
            str(PROMETHEUS),
            f"--config.file={prom_cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        with process(argv, tmp_path / "prometheus.log") as prom:
            api = f"http://127.0.0.1:{port}"

            def query(expr: str) -> dict[str, float]:
                q = urllib.parse.urlencode({"query": expr})
                doc = json.loads(http_get(f"{api}/api/v1/query?{q}"))
                assert doc["status"] == "success", doc
                return {r["metric"]["job"]: float(r["value"][1]) for r in doc["data"]["result"]}

            def all_scraped() -> dict[str, float] | None:
                assert prom.poll() is None, (tmp_path / "prometheus.log").read_text()
                got = query("probe_success")
                return got if set(got) == set(targets) else None

            success = poll("Prometheus's first scrape of every job", all_scraped)
            assert success == {"open": 1.0, "closed": 0.0, "tls": 1.0, "udp": 1.0}, success
            durations = query("probe_duration_seconds")
            assert set(durations) == set(targets)
            assert all(0 < d < 5 for d in durations.values()), durations
            up = query("up")
            assert up == {job: 1.0 for job in targets}, up


@pytest.mark.skipif(BLACKBOX is None, reason="prometheus-blackbox-exporter is not installed")
def test_blackbox_exporter_agrees_on_the_same_blackbox_yml(tmp_path: Path, nginx_tls, tls_pki) -> None:
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text(yaml.safe_dump(blackbox_yml(tls_pki.ca.cert)))
    holder = socket.create_server(("127.0.0.1", 0), backlog=1024)
    cases = [
        ("tcp_connect", f"127.0.0.1:{holder.getsockname()[1]}", 1.0),
        ("tcp_connect", f"127.0.0.1:{closed_port()}", 0.0),
        ("tls_connect", f"127.0.0.1:{nginx_tls.ports['valid']}", 1.0),
        ("tls_connect", f"127.0.0.1:{nginx_tls.ports['expired']}", 0.0),
        ("tls_connect", f"127.0.0.1:{nginx_tls.ports['wrong_name']}", 0.0),
    ]
    port = free_port()
    argv = [str(BLACKBOX), f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}"]
    with holder, socketkit_exporter(cfg) as ours, process(argv, tmp_path / "blackbox.log") as bb:

        def healthy() -> bool:
            assert bb.poll() is None, (tmp_path / "blackbox.log").read_text()
            return bool(http_get(f"http://127.0.0.1:{port}/-/healthy"))

        poll("blackbox_exporter", healthy)
        for module, target, expected in cases:
            q = f"/probe?target={target}&module={module}"
            theirs = samples(http_get(f"http://127.0.0.1:{port}{q}"))
            mine = samples(http_get(f"http://{ours}{q}"))
            assert mine["probe_success"] == theirs["probe_success"] == expected, (module, target)
            for name in ("probe_ip_protocol", "probe_ip_addr_hash", "probe_failed_due_to_regex"):
                assert mine[name] == theirs[name], (name, module, target)
            if expected and module == "tls_connect":
                assert mine["probe_ssl_earliest_cert_expiry"] == theirs["probe_ssl_earliest_cert_expiry"]
                assert [k for k in mine if k.startswith("probe_tls_version_info")] == [
                    k for k in theirs if k.startswith("probe_tls_version_info")
                ]
