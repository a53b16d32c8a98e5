"""Run inside a private network namespace (root): start listeners, scan
127.0.0.1 fully with socketkit and nmap, print JSON. Used by
test_probe_scan.py; exits 77 when namespaces are not available."""

import json
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from _probe_util import enter_private_netns, parse_nmap_grepable, proc_listening_loopback

try:
    enter_private_netns()
except OSError as e:
    print(f"no netns: {e}", file=sys.stderr)
    sys.exit(77)

import socketkit

socks = []
for fam, host in [(socket.AF_INET, "127.0.0.1")] * 3 + [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")]:
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(128)
    socks.append(s)
ours = sorted(s.getsockname()[1] for s in socks)
report = socketkit.scan("127.0.0.1", "1-65535")
out = {
    "ours": ours,
    "proc": sorted(proc_listening_loopback()),
    "socketkit": report.open_ports(),
    "counts": report.counts,
    "elapsed": report.elapsed,
    "nmap": None,
}
if shutil.which("nmap"):
    r = subprocess.run(
        ["nmap", "-sT", "-T4", "-p-", "-n", "-oG", "-", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out["nmap"] = sorted(parse_nmap_grepable(r.stdout))
for s in socks:
    s.close()
print(json.dumps(out))
