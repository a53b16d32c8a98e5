"""Run inside a private network namespace (root): make every probe connect
to itself and print what each said, as JSON. The namespace's ephemeral port
range is narrowed to the one target port before each probe, so the kernel
can only pick the target port as the source port: TCP's simultaneous open
then completes a handshake with nobody listening (what a scan of loopback
hits by chance about once per 65,535 ports), and a UDP probe would read its
own datagram back. Used by test_probe_agreement.py; exits 77 when
namespaces are not available."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _probe_util import enter_private_netns

try:
    enter_private_netns()
except OSError as e:
    print(f"no netns: {e}", file=sys.stderr)
    sys.exit(77)

from _agreement import observe

import socketkit

RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
port = 40000


def next_target() -> tuple[str, int]:
    """A fresh even port (a used one stays in TIME_WAIT), the only one the
    kernel may pick as a source port from now on."""
    global port
    port += 2
    with open(RANGE, "w") as f:
        f.write(f"{port} {port}")
    return ("127.0.0.1", port)


seen = observe(next_target, 0.5)
r = socketkit.udp_probe(*next_target(), b"ping", timeout=0.2, retries=0)
seen["udp_probe"] = {"state": r.state, "error": r.error}
print(json.dumps(seen))
