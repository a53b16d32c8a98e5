"""Every default is defined once, in the core (src/defaults.rs). The Python
signatures read it from ``_core.DEFAULTS``; the compiled classes show it in
their text signatures, which this test holds to the same table."""

import inspect

import pytest

import socketkit
from socketkit import _core, cli

D = _core.DEFAULTS

SIGNATURE_DEFAULTS = [
    (socketkit.TcpClient.recv, "bufsize", "recv_size"),
    (socketkit.TcpClient.recv_until, "max_size", "recv_size"),
    (socketkit.TcpClient.recv_line, "max_size", "recv_size"),
    (socketkit.TcpClient.lines, "max_size", "recv_size"),
    (socketkit.TcpClient.request, "max_size", "recv_size"),
    (socketkit.UdpSocket.recv, "bufsize", "recv_size"),
    (socketkit.UdpSocket.recvfrom, "bufsize", "recv_size"),
    (socketkit.UdpSocket.recv_many, "max_messages", "recv_many"),
    (socketkit.UdpSocket.recv_many, "bufsize", "recv_size"),
    (socketkit.UdpSocket.request, "timeout", "udp_timeout"),
    (socketkit.UdpSocket.request, "retries", "udp_retries"),
    (socketkit.TcpServer, "backlog", "backlog"),
    (socketkit.TcpServer, "max_connections", "max_connections"),
    (socketkit.TcpServer, "max_message", "max_message"),
    (socketkit.TcpServer.stop, "timeout", "stop_timeout"),
    (socketkit.UdpServer.stop, "timeout", "stop_timeout"),
    (socketkit.check, "timeout", "check_timeout"),
    (socketkit.check_many, "concurrency", "check_concurrency"),
    (socketkit.check_iter, "concurrency", "check_concurrency"),
    (socketkit.scan, "ports", "scan_ports"),
    (socketkit.scan, "timeout", "scan_timeout"),
    (socketkit.scan, "concurrency", "scan_concurrency"),
    (socketkit.scan_iter, "concurrency", "scan_concurrency"),
    (socketkit.tcping, "count", "ping_count"),
    (socketkit.tcping, "interval", "ping_interval"),
    (socketkit.wait_for, "timeout", "wait_timeout"),
    (socketkit.wait_for, "interval", "wait_interval"),
    (socketkit.banner, "max_bytes", "banner_max_bytes"),
    (socketkit.udp_probe, "retries", "udp_retries"),
]


@pytest.mark.parametrize(
    ("func", "param", "key"),
    SIGNATURE_DEFAULTS,
    ids=[f"{f.__qualname__}-{p}" for f, p, _ in SIGNATURE_DEFAULTS],
)
def test_signature_defaults_come_from_the_core(func, param, key):
    assert inspect.signature(func).parameters[param].default == D[key]


CLI_DEFAULTS = [
    (["check", "h:1"], "timeout", "check_timeout"),
    (["check", "h:1"], "concurrency", "check_concurrency"),
    (["scan", "h"], "ports", "scan_ports"),
    (["scan", "h"], "timeout", "scan_timeout"),
    (["scan", "h"], "concurrency", "scan_concurrency"),
    (["ping", "h:1"], "interval", "ping_interval"),
    (["ping", "h:1"], "timeout", "ping_timeout"),
    (["wait", "h:1"], "timeout", "wait_timeout"),
    (["wait", "h:1"], "interval", "wait_interval"),
]


@pytest.mark.parametrize(
    ("argv", "dest", "key"), CLI_DEFAULTS, ids=[f"{a[0]}-{d}" for a, d, _ in CLI_DEFAULTS]
)
def test_cli_defaults_come_from_the_core(argv, dest, key):
    args = cli.build_parser().parse_args(argv)
    assert getattr(args, dest) == D[key]


def test_cli_ping_without_a_count_runs_until_interrupted():
    # DESIGN.md section 11: `ping` without -c runs until Ctrl-C (tcping()
    # keeps its count of ping_count).
    assert cli.build_parser().parse_args(["ping", "h:1"]).count is None
