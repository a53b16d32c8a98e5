#!/usr/bin/python
# Copyright: socketkit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: scan
short_description: TCP connect scan (nmap -sT) of hosts and ports, from the managed host
version_added: "0.1.0"
description:
  - Connects to every port of every host from the managed host, thousands at once (socketkit's C(scan)),
    and reports the open ones (RV(open)), a count per state and each port scanned.
  - Scanning changes nothing, so the module runs in check mode too and never reports a change.
author: socketkit contributors (@socketkit)
requirements:
  - socketkit (C(pip install socketkit)) in the managed host's Python (C(ansible_python_interpreter)).
options:
  hosts:
    description: Host names, IP addresses and CIDR blocks (C(10.0.0.0/30)).
    type: list
    elements: str
    required: true
    aliases: [host]
  ports:
    description: Ports as nmap writes them (C(22,80,8000-8100), service names).
    type: str
    default: "1-1024"
  timeout:
    description: Seconds per connect.
    type: float
    default: 0.5
  concurrency:
    description: Connects at once.
    type: int
    default: 1024
  rate:
    description: New connections per second at most.
    type: float
  all_results:
    description: RV(results) lists every port scanned. V(false) lists the ports not closed (nmap's way).
    type: bool
    default: false
  family:
    description: Resolve and connect over this address family only.
    type: str
    choices: [ipv4, ipv6]
  source_address:
    description: Local address to connect from.
    type: str
  vantage:
    description: Where the scan ran. Default the inventory host name.
    type: str
  fail_on_down:
    description: Fail the task when no port is open. V(false) returns RV(ok=false) instead.
    type: bool
    default: true
  msg:
    description: The failure message instead of the default one.
    type: str
notes:
  - Supports check mode and never reports a change.
  - A host whose Python lacks socketkit fails with C(msg) saying to run C(pip install socketkit) on that host.
seealso:
  - module: socketkit.net.check
"""

EXAMPLES = r"""
- name: What listens on the app subnet, seen from each site
  socketkit.net.scan:
    hosts: 10.1.0.0/28
    ports: "22,80,443,5432,6379"
  register: seen

- name: Every port of localhost, at most 2000 connections a second
  socketkit.net.scan:
    hosts: 127.0.0.1
    ports: "1-65535"
    rate: 2000
    fail_on_down: false
"""

RETURN = r"""
ok:
  description: At least one port is open.
  returned: always
  type: bool
vantage:
  description: Where the scan ran.
  returned: always
  type: str
msg:
  description: One line with the count per state.
  returned: always
  type: str
elapsed:
  description: Seconds the module took.
  returned: always
  type: float
open:
  description: Host -> its open ports.
  returned: always
  type: dict
  sample: {10.1.0.5: [22, 5432]}
counts:
  description: State -> how many ports were in it.
  returned: always
  type: dict
  sample: {open: 2, closed: 78}
results:
  description: The ports not closed (every port with O(all_results)), as in M(socketkit.net.check).
  returned: always
  type: list
  elements: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.socketkit.net.plugins.module_utils import common
from ansible_collections.socketkit.net.plugins.module_utils.common import ADDRESS_SPEC, COMMON_SPEC


def main():
    spec = {
        "hosts": {"type": "list", "elements": "str", "required": True, "aliases": ["host"]},
        "ports": {"type": "str", "default": "1-1024"},
        "timeout": {"type": "float", "default": 0.5},
        "concurrency": {"type": "int", "default": 1024},
        "rate": {"type": "float"},
        "all_results": {"type": "bool", "default": False},
        "msg": {"type": "str"},
        **ADDRESS_SPEC,
        **COMMON_SPEC,
    }
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    started = time.monotonic()

    def body():
        p = module.params
        report = common.socketkit.scan(
            p["hosts"],
            p["ports"],
            timeout=p["timeout"],
            concurrency=p["concurrency"],
            rate=p["rate"],
            **common.address_kwargs(p),
        )
        doc = report.to_dict()
        shown = [r for r in report if p["all_results"] or r.state != "closed"]
        results = [r.to_dict() for r in shown]
        ok = any(r.ok for r in report)
        counts = ", ".join(f"{n} {s}" for s, n in sorted(doc["counts"].items()))
        what = f"scanned {len(report)} port(s): {counts}"
        # The open map and counts go beside the results.
        common.finish(
            module, results, ok, what, ["no port open"], started, open=doc["open"], counts=doc["counts"]
        )

    common.run(module, body)


if __name__ == "__main__":
    main()
