"""check, scan, tcping and wait_for agree on what a target is: the same
refused, silent and self-connecting targets get the same state (and the
same reason) from each, because the core decides it once (probe/classify.rs:
one errno-to-state mapping and one "did it really open" check).

wait_for reports no state, only why each target is still down; tcping()
reports per lost ping the same reason. Both must match the state the others
give."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _agreement import SELF_CONNECTION, observe
from _probe_util import closed_port, full_backlog, listeners

HERE = Path(__file__).parent
TIMEOUT = 0.3

# kind: (state, error of check/scan/tcping_iter, reason of tcping()/wait_for)
EXPECTED = {
    "open": ("open", None, None),
    "refused": ("closed", None, os.strerror(errno.ECONNREFUSED)),
    "silent": ("filtered", None, "timed out"),
    "self": ("closed", SELF_CONNECTION, SELF_CONNECTION),
}


def assert_agreement(kind: str, seen: dict) -> None:
    state, error, reason = EXPECTED[kind]
    for probe in ("check", "scan", "tcping_iter"):
        assert seen[probe] == {"state": state, "error": error}, (kind, probe, seen)
    up = state == "open"
    assert seen["tcping"] == {"received": int(up), "reason": reason}, (kind, seen)
    assert seen["wait_for"] == {"up": up, "reason": reason}, (kind, seen)


def test_an_open_port_is_open_everywhere():
    with listeners(1) as (port,):
        seen = observe(lambda: ("127.0.0.1", port), TIMEOUT)
    assert_agreement("open", seen)


def test_a_refusing_port_is_closed_everywhere():
    # A fresh port per probe: none of them can have been opened meanwhile.
    seen = observe(lambda: ("127.0.0.1", closed_port()), TIMEOUT)
    assert_agreement("refused", seen)


def test_a_silent_port_is_filtered_everywhere():
    # A full accept queue: the kernel drops the SYNs, nothing answers.
    with full_backlog() as port:
        seen = observe(lambda: ("127.0.0.1", port), TIMEOUT)
    assert_agreement("silent", seen)


def test_a_self_connection_is_closed_everywhere():
    r = subprocess.run(
        [sys.executable, str(HERE / "selfconnect_child.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if r.returncode == 77:
        pytest.skip(f"private network namespaces unavailable: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert_agreement("self", seen)
    # UDP: the datagram sent to itself is no reply.
    assert seen["udp_probe"] == {"state": "closed", "error": SELF_CONNECTION}
