#!/usr/bin/python
# Copyright: socketkit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: wait
short_description: Wait for ports to open, close or drain (ansible.builtin.wait_for for several targets, UDP too)
version_added: "0.1.0"
description:
  - Waits from the managed host until every target reaches O(state), all at once under one deadline
    (O(timeout), with O(delay) inside it), then returns; fails when the deadline passes.
  - A superset of M(ansible.builtin.wait_for) for ports. Its names work here too (O(host), O(port),
    O(sleep), O(search_regex), O(connect_timeout), O(delay), O(msg), O(state) V(started)/V(stopped)),
    and it adds several targets, UDP (O(proto)), bytes to O(send) before matching, TLS and dialogues
    (O(tls), O(starttls), O(steps), O(service)), and a deadline it keeps to within a fraction of a
    second, however the targets behave.
  - V(drained) waits until no connection to the port on the managed host is left in a state other than
    those of O(drain_ignore) (C(TIME_WAIT) by default, so closed connections do not stall the wait), read
    from C(/proc/net/tcp) and C(tcp6) (hosts without IPv6 included).
  - Waiting changes nothing, so the module runs in check mode too and never reports a change.
author: socketkit contributors (@socketkit)
requirements:
  - socketkit (C(pip install socketkit)) in the managed host's Python (C(ansible_python_interpreter)).
options:
  targets:
    description: C(host:port) strings; ports may be service names.
    type: list
    elements: str
    required: true
    aliases: [target, host]
  port:
    description: Port for the targets that name none (wait_for's O(port)).
    type: int
  state:
    description:
      - V(open) (V(started)) a connection is accepted (and the dialogue passes); V(closed) (V(stopped))
        refused or silent; V(drained) no connection left on the port on this host.
      - With O(proto=udp), V(open) means a reply came back, V(closed) an ICMP port unreachable.
    type: str
    choices: [open, closed, drained, started, stopped]
    default: open
  timeout:
    description: Seconds to wait in all, O(delay) included (socketkit's default, not wait_for's 300).
    type: float
    default: 30.0
  delay:
    description: Seconds before the first try, inside O(timeout).
    type: float
    default: 0.0
  interval:
    description: Seconds between tries (backing off to 1 s on TCP).
    type: float
    default: 0.25
    aliases: [sleep]
  connect_timeout:
    description: Seconds per try (default 5 on TCP, 1 on UDP), always within what is left of O(timeout).
    type: float
  drain_ignore:
    description: With V(drained), the TCP states (C(ss)'s names) that do not count.
    type: list
    elements: str
    default: [TIME_WAIT]
  proto:
    description: V(udp) sends O(send) (or an empty datagram) and waits for a reply.
    type: str
    choices: [tcp, udp]
    default: tcp
  send:
    description: Text sent on each connection (each datagram on UDP) before matching O(expect) or O(search_regex).
    type: str
  expect:
    description: Text the reply must contain.
    type: str
  search_regex:
    description: Regular expression the reply must match (wait_for's name).
    type: str
  tls:
    description: V(true) or a dict of C(socketkit.TlsConfig) arguments; the handshake must pass.
    type: raw
  starttls:
    description: Plaintext exchange before TLS.
    type: str
    choices: [smtp, imap, pop3, ftp, postgres]
  steps:
    description: Dialogue steps, as in M(socketkit.net.check).
    type: list
    elements: dict
  service:
    description: A ready dialogue from C(socketkit.SERVICES).
    type: str
  family:
    description: Resolve and connect over this address family only.
    type: str
    choices: [ipv4, ipv6]
  source_address:
    description: Local address to connect from.
    type: str
  vantage:
    description: Where the wait ran. Default the inventory host name.
    type: str
  fail_on_down:
    description: Fail the task when the deadline passes. V(false) returns RV(ok=false) instead.
    type: bool
    default: true
  msg:
    description: The failure message instead of the default one.
    type: str
notes:
  - Supports check mode and never reports a change.
  - O(state=closed), O(state=drained), O(delay) and O(connect_timeout) do not combine with O(tls),
    O(starttls), O(steps), O(service), O(family) or O(source_address) on TCP.
  - A host whose Python lacks socketkit fails with C(msg) saying to run C(pip install socketkit) on that host.
seealso:
  - module: ansible.builtin.wait_for
  - module: socketkit.net.check
"""

EXAMPLES = r"""
- name: Wait up to a minute for the database and the cache
  socketkit.net.wait:
    targets: [db.internal:5432, cache.internal:6379]
    timeout: 60

- name: Redis is up when it answers PING
  socketkit.net.wait:
    host: cache.internal
    port: 6379
    send: "PING\r\n"
    expect: "+PONG"

- name: A DNS server answers on UDP
  socketkit.net.wait:
    targets: 10.0.0.53:53
    proto: udp
    send: "{{ lookup('ansible.builtin.file', 'dns-query.bin') }}"

- name: Stop taking traffic, then wait for the app's connections to drain
  socketkit.net.wait:
    targets: 0.0.0.0:8080
    state: drained
    timeout: 300
"""

RETURN = r"""
ok:
  description: Every target reached O(state) in time.
  returned: always
  type: bool
vantage:
  description: Where the wait ran.
  returned: always
  type: str
msg:
  description: One line, naming the targets that did not make it and why.
  returned: always
  type: str
  sample: "1 of 2 targets not open after 5.0 s from web1: timed out after 5 s waiting for db:5432 (Connection refused)"
elapsed:
  description: Seconds the wait took (wait_for's name), O(delay) included.
  returned: always
  type: float
results:
  description: One per target, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    target: {description: The target as waited for., type: str}
    state: {description: "The state reached, or V(timeout).", type: str}
    ok: {description: The target reached O(state)., type: bool}
    waited_s: {description: Seconds waited in all., type: float}
    error: {description: Why it did not make it., type: str}
    vantage: {description: Where it was measured from., type: str}
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.socketkit.net.plugins.module_utils import common, waiting
from ansible_collections.socketkit.net.plugins.module_utils.common import (
    ADDRESS_SPEC,
    COMMON_SPEC,
    SERVICE_SPEC,
)


def main():
    spec = {
        "targets": {"type": "list", "elements": "str", "required": True, "aliases": ["target", "host"]},
        "port": {"type": "int"},
        "state": {"type": "str", "choices": sorted(waiting.STATES), "default": "open"},
        "timeout": {"type": "float", "default": 30.0},
        "delay": {"type": "float", "default": 0.0},
        "interval": {"type": "float", "default": 0.25, "aliases": ["sleep"]},
        "connect_timeout": {"type": "float"},
        "drain_ignore": {"type": "list", "elements": "str", "default": ["TIME_WAIT"]},
        "proto": {"type": "str", "choices": ["tcp", "udp"], "default": "tcp"},
        "send": {"type": "str"},
        "expect": {"type": "str"},
        "search_regex": {"type": "str"},
        "msg": {"type": "str"},
        **SERVICE_SPEC,
        **ADDRESS_SPEC,
        **COMMON_SPEC,
    }
    spec["starttls"] = {"type": "str", "choices": ["smtp", "imap", "pop3", "ftp", "postgres"]}
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    started = time.monotonic()

    def body():
        p = module.params
        if p["timeout"] < 0 or p["delay"] < 0 or p["interval"] < 0:
            raise ValueError("timeout, delay and interval must be 0 or more")
        results, ok, down, waited, error = waiting.wait(p)
        state = waiting.STATES[p["state"]]
        n = len(results)
        what = (
            f"{n} of {n} targets {state} after {waited:g} s"
            if ok
            else f"{len(down)} of {n} targets not {state} after {waited:g} s"
        )
        common.finish(module, results, ok, what, [error or ", ".join(down)], started)

    common.run(module, body)


if __name__ == "__main__":
    main()
