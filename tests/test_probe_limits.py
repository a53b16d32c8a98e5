"""The scan-size limit of the blocking scan(), enforced by the core's
planner before any name is resolved or any probe is planned."""

from __future__ import annotations

import time

import pytest

import socketkit


def test_a_scan_too_large_to_keep_is_refused_at_once():
    start = time.monotonic()
    with pytest.raises(ValueError) as exc:
        # A /16 times every port, plus a name that would not resolve: the
        # size is refused first, without a lookup and without planning
        # 4.3 billion probes.
        socketkit.scan(["10.0.0.0/16", "no-such-host.invalid"], "-")
    assert str(exc.value) == (
        "ports: 65537 hosts x ports = 4294967295 probes is more than scan() keeps (16777216); use scan_iter()"
    )
    assert time.monotonic() - start < 2.0
