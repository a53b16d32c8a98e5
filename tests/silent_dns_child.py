"""Run in a private network + mount namespace (root) where the resolver is
a UDP socket on 127.0.0.1:53 that never answers; prints JSON of what
check_many and scan did. Exits 77 when namespaces are not available."""

import ctypes
import json
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _probe_util import closed_port, enter_private_netns

import socketkit

CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 262144

libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(CLONE_NEWNS) != 0:
    sys.exit(77)
if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
    sys.exit(77)
try:
    enter_private_netns()
except OSError:
    sys.exit(77)
conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
conf.write("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
conf.close()
if libc.mount(conf.name.encode(), b"/etc/resolv.conf", None, MS_BIND, None) != 0:
    sys.exit(77)

silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
silent.bind(("127.0.0.1", 53))

closed = closed_port()
t = time.monotonic()
res = socketkit.check_many(["silent-name.example:80", f"127.0.0.1:{closed}"], timeout=0.5)
took_many = time.monotonic() - t
t = time.monotonic()
try:
    socketkit.scan("silent-name.example", 80, timeout=0.5)
    scan_error = None
except OSError as e:
    scan_error = type(e).__name__
took_scan = time.monotonic() - t
t = time.monotonic()
one = socketkit.check("silent-name.example", 80, timeout=0.5)
took_one = time.monotonic() - t
silent.close()
os.unlink(conf.name)
print(
    json.dumps(
        {
            "states": [r.state for r in res],
            "error": res[0].error,
            "took_many": took_many,
            "scan_error": scan_error,
            "took_scan": took_scan,
            "one": one.state,
            "took_one": took_one,
        }
    )
)
