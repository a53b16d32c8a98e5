"""Clients that send and never read (issue 15 item 5): an on_message server
keeps at most ``max_unsent`` reply bytes per connection, stops reading and
handling that connection's messages past it, and resumes once the client
reads. The server runs in a child process so its RSS is its own."""

from __future__ import annotations

import inspect
import json
import socket
import subprocess
import sys

import pytest
from _server_util import connect, recv_line, wait_until

import socketkit
from socketkit import _core

# Eight clients each pipeline 4,096 tiny requests in one write (4 KiB of
# b"\n", or 16 KiB of empty length frames: one read each) and do not read;
# every reply is 4 KiB, so a server that answers a whole read at once builds
# 16 MiB per client (128 MiB in all) before it notices nobody reads.
CLIENTS = 8
REQUESTS = 4096
REPLY = 4096
MAX_GROWTH_MIB = 30

CHILD = r"""
import json, socket, ssl, struct, sys, time
import socketkit

cfg = json.loads(sys.argv[1])
framing = cfg["framing"]

def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

def frame(b):
    return b + b"\n" if framing == "line" else struct.pack(">I", len(b)) + b

def recv_exactly(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)

reply = b"y" * cfg["reply"]
tls = None
ctx = None
if cfg["tls"]:
    tls = socketkit.TlsConfig(cert_file=cfg["cert"], key_file=cfg["key"])
    ctx = ssl.create_default_context(cafile=cfg["ca"])
srv = socketkit.TcpServer(
    on_message=lambda m: b"pong" if m == b"ping" else reply, framing=framing, tls=tls
)
srv.start()

def client():
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(30)
    raw.connect(srv.address)
    return ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw

# Warm up (threads, allocator arenas, the TLS session cache) first.
for _ in range(2):
    s = client()
    s.sendall(frame(b"ping"))
    assert recv_exactly(s, len(frame(b"pong"))) == frame(b"pong")
    s.close()
base = rss_kib()
clients = [client() for _ in range(cfg["clients"])]
for s in clients:
    s.sendall(frame(b"") * cfg["requests"])
# Until the server has gone quiet (sent what the sockets take) for 0.5 s.
peak, last, quiet = base, -1, 0
deadline = time.monotonic() + 30
while quiet < 10 and time.monotonic() < deadline:
    time.sleep(0.05)
    peak = max(peak, rss_kib())
    out = srv.stats["bytes_out"]
    quiet = quiet + 1 if out == last else 0
    last = out
# Now read: every reply arrives, in order, then the connection still works.
want = frame(reply) * cfg["requests"]
resumed = 0
for s in clients:
    if recv_exactly(s, len(want)) == want:
        s.sendall(frame(b"ping"))
        resumed += recv_exactly(s, len(frame(b"pong"))) == frame(b"pong")
    s.close()
srv.stop()
print(json.dumps({"growth_kib": peak - base, "resumed": resumed}))
"""


def run_flood(framing: str, tls_pki=None) -> dict[str, int]:
    cfg = {
        "framing": framing,
        "clients": CLIENTS,
        "requests": REQUESTS,
        "reply": REPLY,
        "tls": tls_pki is not None,
    }
    if tls_pki is not None:
        cfg.update(cert=str(tls_pki.valid.chain), key=str(tls_pki.valid.key), ca=str(tls_pki.ca.cert))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"child died with {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("framing", ["line", "length"])
def test_clients_that_never_read_cost_a_bounded_amount_and_resume(framing: str) -> None:
    r = run_flood(framing)
    assert r["growth_kib"] < MAX_GROWTH_MIB * 1024, r
    assert r["resumed"] == CLIENTS, r


def test_tls_clients_that_never_read_cost_a_bounded_amount_and_resume(tls_pki) -> None:
    r = run_flood("line", tls_pki)
    assert r["growth_kib"] < MAX_GROWTH_MIB * 1024, r
    assert r["resumed"] == CLIENTS, r


def test_a_small_max_unsent_still_answers_everything_in_order() -> None:
    # A bound smaller than one reply: one message at a time, none lost.
    with socketkit.TcpServer(on_message=lambda m: m * 100, max_unsent=1) as srv, connect(srv.address) as s:
        s.sendall(b"".join(b"%d\n" % i for i in range(500)))
        for i in range(500):
            assert recv_line(s) == b"%d" % i * 100 + b"\n"


def test_max_unsent_default_and_arguments() -> None:
    assert _core.DEFAULTS["max_unsent"] == 65536
    assert (
        inspect.signature(socketkit.TcpServer).parameters["max_unsent"].default
        == _core.DEFAULTS["max_unsent"]
    )
    for bad, exc in [
        (0, ValueError),
        (-1, ValueError),
        (2**64, ValueError),
        ("big", TypeError),
        (1.5, TypeError),
    ]:
        with pytest.raises(exc, match="max_unsent"):
            socketkit.TcpServer(on_message=print, max_unsent=bad)
    with pytest.raises(ValueError, match="max_unsent applies only with on_message"):
        socketkit.TcpServer(handler=print, max_unsent=1024)
    socketkit.TcpServer(on_message=print, max_unsent=None).stop()


@pytest.mark.parametrize("framing", ["line", "length"])
def test_idle_timeout_closes_a_client_that_reads_no_reply(framing: str) -> None:
    one = b"\n" if framing == "line" else b"\0\0\0\0"
    with socketkit.TcpServer(on_message=lambda m: b"y" * 4096, framing=framing, idle_timeout=0.3) as srv:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with s:
            s.connect(srv.address)
            s.sendall(one * 4096)  # 16 MiB of replies: far more than the sockets hold
            assert wait_until(lambda: srv.stats["bytes_out"] > 0)
            assert wait_until(lambda: srv.stats["active"] == 0, within=10)
