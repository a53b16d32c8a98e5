"""What check, scan, tcping (the iterator and the blocking call) and
wait_for each say about one kind of target; shared by
test_probe_agreement.py and selfconnect_child.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import socketkit

SELF_CONNECTION = "self-connection (nothing listens)"


def _wait_for_reason(host: str, port: int, timeout: float) -> dict[str, Any]:
    try:
        # One attempt only: the interval is longer than the timeout.
        socketkit.wait_for((host, port), timeout=timeout, interval=60)
    except socketkit.TimeoutError as e:
        # "... waiting for HOST:PORT (reason)"
        text = str(e)
        key = f"{host}:{port} ("
        assert key in text and text.endswith(")"), text
        return {"up": False, "reason": text.split(key, 1)[1][:-1]}
    return {"up": True, "reason": None}


def observe(next_target: Callable[[], tuple[str, int]], timeout: float) -> dict[str, dict[str, Any]]:
    """Ask every probe about ``next_target()``, called once per probe (a
    self-connecting target can be used once: its port then sits in
    TIME_WAIT)."""
    seen: dict[str, dict[str, Any]] = {}
    r = socketkit.check(*next_target(), timeout=timeout)
    seen["check"] = {"state": r.state, "error": r.error}
    host, port = next_target()
    (r,) = list(socketkit.scan(host, [port], timeout=timeout))
    seen["scan"] = {"state": r.state, "error": r.error}
    it = socketkit._probe_core._tcping_iter(*next_target(), count=1, interval=0.0, timeout=timeout)
    try:
        ((_seq, _host, _addr, _port, state, _rtt, error),) = list(it)
    finally:
        it.close()
    seen["tcping_iter"] = {"state": state, "error": error}
    stats = socketkit.tcping(*next_target(), count=1, interval=0.0, timeout=timeout)
    seen["tcping"] = {"received": stats.received, "reason": stats.errors[0]}
    seen["wait_for"] = _wait_for_reason(*next_target(), timeout)
    return seen
