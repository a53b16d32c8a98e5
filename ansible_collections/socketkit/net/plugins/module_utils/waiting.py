# Copyright: socketkit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""socketkit.net.wait's waiting: TCP through ``socketkit.wait_for``, UDP
with probes in rounds, both under one deadline."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.socketkit.net.plugins.module_utils import common

#: wait_for's state names, accepted too.
STATES = {"open": "open", "started": "open", "closed": "closed", "stopped": "closed", "drained": "drained"}


def _encode(v):
    return None if v is None else str(v).encode()


def wait_tcp(p, targets, state, timeout):
    """``{target: ok}`` and the error of a timeout (None when all made it)."""
    sk = common.socketkit
    send, expect = _encode(p["send"]), _encode(p["expect"])
    service = common.service_kwargs(p)
    if p["search_regex"] is not None:
        # wait_for's search_regex: a regex Expect step after the optional send.
        if expect is not None or service.get("steps"):
            raise ValueError("search_regex: give expect, steps or search_regex, not several")
        service["steps"] = [
            *([sk.Send(send)] if send else []),
            sk.Expect(_encode(p["search_regex"]), regex=True),
        ]
        send = None
    kw = {}
    if p["connect_timeout"] is not None:
        kw["connect_timeout"] = p["connect_timeout"]
    if state != "open":
        kw["state"] = state
        kw["drain_ignore"] = p["drain_ignore"]
    try:
        sk.wait_for(
            targets,
            timeout=timeout,
            interval=p["interval"],
            send=send,
            expect=expect,
            **kw,
            **service,
            **common.address_kwargs(p),
        )
    except sk.TimeoutError as e:
        still = set(getattr(e, "targets", None) or targets)
        return {t: t not in still for t in targets}, common.one_line(e.strerror or e)
    return dict.fromkeys(targets, True), None


def _udp_once(p, target, state, timeout):
    """One UDP try: did ``target`` reach ``state``?"""
    sk = common.socketkit
    payload = _encode(p["send"]) or b""
    try:
        with sk.UdpClient(target, timeout=timeout) as u:
            reply = u.request(payload, timeout=timeout, retries=0)
    except ConnectionRefusedError:  # ICMP port unreachable
        return state == "closed"
    except OSError:  # silence, or no route: neither open nor refused
        return False
    if state == "closed":
        return False
    if p["search_regex"] is not None:
        return re.search(_encode(p["search_regex"]), reply) is not None
    expect = _encode(p["expect"])
    return expect is None or expect in reply


def wait_udp(p, targets, state, timeout):
    """UDP: open once a reply (matching ``expect``) comes back, closed once
    the port is refused (ICMP unreachable); rounds every ``interval``
    within one deadline."""
    if state == "drained":
        raise ValueError("state=drained is for TCP (connections to drain); UDP has none")
    if common.service_kwargs(p) or p["family"] or p["source_address"]:
        raise ValueError("proto=udp takes no tls, starttls, steps, service, family or source_address")
    deadline = time.monotonic() + timeout
    done = dict.fromkeys(targets, False)
    per_try = p["connect_timeout"] or 1.0
    with ThreadPoolExecutor(max(1, min(64, len(targets)))) as pool:
        while True:
            left = deadline - time.monotonic()
            pending = [t for t, ok in done.items() if not ok]
            if not pending or left <= 0:
                break
            each = min(per_try, left)
            tries = [pool.submit(_udp_once, p, t, state, each) for t in pending]
            for t, f in zip(pending, tries, strict=True):
                done[t] = f.result()
            if all(done.values()):
                break
            time.sleep(max(0.0, min(p["interval"], deadline - time.monotonic())))
    down = [t for t, ok in done.items() if not ok]
    error = f"timed out after {round(timeout, 3):g} s waiting for {', '.join(down)}" if down else None
    return done, error


def wait(p):
    """Wait as the options say: ``(results, ok, down, waited_s)``."""
    targets = common.with_port(p["targets"], p["port"])
    state = STATES[p["state"]]
    started = time.monotonic()
    timeout = p["timeout"]
    # The delay is inside the deadline, as ansible.builtin.wait_for has it.
    time.sleep(min(p["delay"], timeout))
    left = max(0.0, timeout - (time.monotonic() - started))
    if p["proto"] == "udp":
        done, error = wait_udp(p, targets, state, left)
    else:
        done, error = wait_tcp(p, targets, state, left)
    waited = round(time.monotonic() - started, 3)
    results = [
        {
            "target": t,
            "state": state if ok else "timeout",
            "ok": ok,
            "waited_s": waited,
            "error": None if ok else error,
        }
        for t, ok in done.items()
    ]
    down = [t for t, ok in done.items() if not ok]
    return results, not down, down, waited, error
