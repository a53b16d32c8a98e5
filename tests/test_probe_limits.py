"""The scan-size limit of scan() and scan_iter(), enforced by the core's
planner before any name is resolved or any probe is planned."""

from __future__ import annotations

import time

import pytest

import socketkit


@pytest.mark.parametrize("scan", [socketkit.scan, socketkit.scan_iter])
def test_a_scan_too_large_to_plan_is_refused_at_once(scan):
    start = time.monotonic()
    with pytest.raises(ValueError) as exc:
        # A /16 times every port, plus a name that would not resolve: the
        # size is refused first, without a lookup and without planning
        # 4.3 billion probes (~170 GB of jobs).
        list(scan(["10.0.0.0/16", "no-such-host.invalid"], "-"))
    assert str(exc.value) == (
        "ports: 65537 hosts x ports = 4294967295 probes is more than one scan takes (16777216);"
        " scan fewer hosts or ports at a time"
    )
    assert time.monotonic() - start < 2.0
