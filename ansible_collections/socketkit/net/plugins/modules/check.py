#!/usr/bin/python
# Copyright: socketkit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: check
short_description: Check that TCP or UDP ports answer, from the managed host
version_added: "0.1.0"
description:
  - Connects to every target at once from the managed host (socketkit's C(check_many), Rust, no shell-out)
    and reports each one's state (V(open), V(closed), V(filtered), V(error)) and round-trip time.
  - With O(tls), O(starttls), O(steps) or O(service), a target is V(open) only once the TLS handshake
    and every dialogue step passed.
  - Each result says where it was measured from (RV(vantage)); C(socketkit report) merges the results of
    many hosts into one table.
  - Probes change nothing, so the module runs in check mode too and never reports a change.
author: socketkit contributors (@socketkit)
requirements:
  - socketkit (C(pip install socketkit)) in the managed host's Python (C(ansible_python_interpreter)).
options:
  targets:
    description:
      - C(host:port) strings (C([v6]:port) for IPv6 literals); ports may be service names.
    type: list
    elements: str
    required: true
    aliases: [target, host]
  port:
    description: Port for the targets that name none.
    type: int
  timeout:
    description: Seconds per target (connect, TLS and dialogue together).
    type: float
    default: 1.0
  proto:
    description: V(udp) sends an empty datagram and waits for a reply, as C(nmap -sU) (O(steps), O(service), O(tls) and O(starttls) are TCP only).
    type: str
    choices: [tcp, udp]
    default: tcp
  concurrency:
    description: Targets probed at once.
    type: int
    default: 512
  rate:
    description: New connections per second at most.
    type: float
  each_address:
    description: One result per address a name resolves to, not one per target.
    type: bool
    default: false
  tls:
    description:
      - V(true) for TLS from the first byte with the system's trust roots, or a dict of C(socketkit.TlsConfig)
        arguments (C(verify), C(ca_file), C(cert_file), C(key_file), C(server_hostname), C(min_version),
        C(max_version), C(alpn)).
    type: raw
  starttls:
    description: Plaintext exchange before TLS.
    type: str
    choices: [smtp, imap, pop3, ftp, postgres]
  steps:
    description:
      - "A dialogue run on each connection, in order. Each item is one of C({send: DATA}),
        C({expect: TEXT, regex: false, timeout: S}) or C({starttls: PROTO}). Nothing is appended to
        C(send) data."
    type: list
    elements: dict
  service:
    description: A ready dialogue from C(socketkit.SERVICES) (redis, memcached, smtp, imap, pop3, ssh, http, postgres).
    type: str
  family:
    description: Resolve and connect over this address family only.
    type: str
    choices: [ipv4, ipv6]
  source_address:
    description: Local address to connect from (C(IP), C(IP:PORT) or C([IPv6]:PORT)).
    type: str
  vantage:
    description: Where the results were measured from. Default the inventory host name (the delegate's under C(delegate_to)).
    type: str
  fail_on_down:
    description: Fail the task when a target is not open. V(false) returns the results with RV(ok=false) instead.
    type: bool
    default: true
  msg:
    description: The failure message instead of the one listing the targets down.
    type: str
notes:
  - Supports check mode (the probes change nothing) and never reports a change.
  - A host whose Python lacks socketkit fails with C(msg) saying to run C(pip install socketkit) on that host.
seealso:
  - module: socketkit.net.wait
  - module: socketkit.net.scan
  - module: socketkit.net.tls
"""

EXAMPLES = r"""
- name: Can every web host reach the database and the cache?
  socketkit.net.check:
    targets: [db.internal:5432, cache.internal:6379]
    timeout: 0.5
  register: reach

- name: Redis answers PING, over TLS, without failing the play
  socketkit.net.check:
    targets: cache.internal:6380
    tls: {ca_file: /etc/ssl/internal-ca.pem}
    steps:
      - send: "PING\r\n"
      - expect: "+PONG"
    fail_on_down: false

- name: From the bastion, not from each host
  socketkit.net.check:
    targets: "{{ inventory_hostname }}:22"
  delegate_to: bastion
"""

RETURN = r"""
ok:
  description: Every target is open.
  returned: always
  type: bool
vantage:
  description: Where the checks ran from.
  returned: always
  type: str
  sample: web1
msg:
  description: One line, naming each target not open and why.
  returned: always
  type: str
  sample: "1 of 2 targets not open from web1: db.internal:5432 closed"
elapsed:
  description: Seconds the module took.
  returned: always
  type: float
results:
  description: One per target (per address with O(each_address)), in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    host: {description: The host as given., type: str}
    address: {description: The IP address connected to., type: str}
    port: {description: The port., type: int}
    proto: {description: V(tcp) or V(udp)., type: str}
    state: {description: "V(open), V(closed), V(filtered), V(open|filtered) (UDP) or V(error).", type: str}
    ok: {description: The target is open., type: bool}
    rtt_ms: {description: Connect time in milliseconds., type: float}
    error: {description: Why it is not open., type: str}
    vantage: {description: Where it was measured from., type: str}
  sample:
    - {host: db.internal, address: 10.0.0.5, port: 5432, proto: tcp, state: open, ok: true, rtt_ms: 0.41,
       error: null, vantage: web1}
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.socketkit.net.plugins.module_utils import common
from ansible_collections.socketkit.net.plugins.module_utils.common import (
    ADDRESS_SPEC,
    COMMON_SPEC,
    SERVICE_SPEC,
)


def main():
    spec = {
        "targets": {"type": "list", "elements": "str", "required": True, "aliases": ["target", "host"]},
        "port": {"type": "int"},
        "timeout": {"type": "float", "default": 1.0},
        "proto": {"type": "str", "choices": ["tcp", "udp"], "default": "tcp"},
        "concurrency": {"type": "int", "default": 512},
        "rate": {"type": "float"},
        "each_address": {"type": "bool", "default": False},
        "msg": {"type": "str"},
        **SERVICE_SPEC,
        **ADDRESS_SPEC,
        **COMMON_SPEC,
    }
    spec["starttls"] = {"type": "str", "choices": ["smtp", "imap", "pop3", "ftp", "postgres"]}
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    started = time.monotonic()

    def body():
        sk = common.socketkit
        p = module.params
        targets = common.with_port(p["targets"], p["port"])
        service = common.service_kwargs(p)
        if p["proto"] == "udp":
            if service:
                raise ValueError("proto=udp takes no tls, starttls, steps or service")
            results = common.udp_many(targets, p["timeout"], p["concurrency"], **common.address_kwargs(p))
            dicts = [r.to_dict() for r in results]
        else:
            results = sk.check_many(
                targets,
                timeout=p["timeout"],
                concurrency=p["concurrency"],
                rate=p["rate"],
                each_address=p["each_address"],
                **common.address_kwargs(p),
                **service,
            )
            dicts = results.to_dicts()
        down = [f"{r.target} {r.state}" + (f" ({r.error})" if r.error else "") for r in results if not r.ok]
        ok = bool(results) and not down
        what = (
            f"{len(results)} of {len(results)} targets open"
            if ok
            else f"{len(down)} of {len(results)} targets not open"
        )
        common.finish(module, dicts, ok, what, down, started)

    common.run(module, body)


if __name__ == "__main__":
    main()
