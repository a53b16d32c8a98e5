"""Connecting by name: Happy Eyeballs over both families, and one deadline
that covers name resolution (DESIGN.md sections 1 and 8).

These run in private network namespaces (root + iproute2), where the test
controls /etc/hosts and /etc/resolv.conf without touching the host's."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from _child import can_make_netns, netns

pytestmark = pytest.mark.skipif(
    not can_make_netns(), reason="needs root and iproute2 for a network namespace"
)

BOTH_FAMILIES = "127.0.0.1 localhost\n::1 localhost\n"


def _run(prefix: list[str], code: str, timeout: float = 30) -> str:
    r = subprocess.run(
        [*prefix, sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r.stdout


@pytest.mark.parametrize("family,host", [("AF_INET6", "::1"), ("AF_INET", "127.0.0.1")])
def test_localhost_reaches_a_server_on_one_family_only(family: str, host: str) -> None:
    code = f"""
    import socket, socketkit
    srv = socket.socket(socket.{family}, socket.SOCK_STREAM)
    srv.bind(({host!r}, 0))
    srv.listen()
    port = srv.getsockname()[1]
    print(sorted({{a[4][0] for a in socket.getaddrinfo("localhost", port)}}))
    with socketkit.TcpClient(("localhost", port), timeout=5) as c:
        conn, _ = srv.accept()
        conn.sendall(b"hi")
        print(c.peer_address[0], c.recv_exact(2).decode())
        conn.close()
    srv.close()
    """
    with netns(hosts=BOTH_FAMILIES) as prefix:
        out = _run(prefix, code).splitlines()
    assert out[0] == "['127.0.0.1', '::1']", out  # the name really has both
    assert out[1] == f"{host} hi"


def test_localhost_prefers_v6_when_both_listen() -> None:
    code = """
    import socket, socketkit
    v6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
    port = v6.getsockname()[1]
    v4 = socket.create_server(("127.0.0.1", port))
    with socketkit.TcpClient(f"localhost:{port}", timeout=5) as c:
        print(c.peer_address[0])
    v4.close(); v6.close()
    """
    with netns(hosts=BOTH_FAMILIES) as prefix:
        assert _run(prefix, code).strip() == "::1"


def test_refused_on_both_families_lists_every_attempt() -> None:
    code = """
    import errno, socket, socketkit
    s = socket.create_server(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    try:
        socketkit.TcpClient(("localhost", port), timeout=5)
    except ConnectionRefusedError as e:
        assert e.errno == errno.ECONNREFUSED
        print(sorted(a[0][0] for a in e.attempts))
    """
    with netns(hosts=BOTH_FAMILIES) as prefix:
        assert _run(prefix, code).strip() == "['127.0.0.1', '::1']"


def test_silent_resolver_cannot_hold_connect_past_timeout() -> None:
    # glibc waits 5 s x 2 attempts on a silent nameserver; the stdlib's
    # create_connection(timeout=1) hangs that long. socketkit's deadline covers
    # resolution, so it must give up after about 1 s.
    code = """
    import socket, time, socketkit
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))   # listens, never answers
    t0 = time.monotonic()
    try:
        socketkit.TcpClient(("service.example.test", 80), timeout=1)
    except socket.timeout as e:
        print(round(time.monotonic() - t0, 3), e.phase, type(e).__name__)
    """
    silent = "nameserver 127.0.0.1\noptions timeout:5 attempts:2\n"
    with netns(resolv=silent) as prefix:
        elapsed, phase, name = _run(prefix, code).split()
    assert phase == "resolve"
    assert name == "TimeoutError"
    assert 0.9 <= float(elapsed) < 2.0, elapsed
