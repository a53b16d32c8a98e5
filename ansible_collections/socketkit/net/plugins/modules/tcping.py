#!/usr/bin/python
# Copyright: socketkit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tcping
short_description: Time TCP handshakes to targets, like ping, from the managed host
version_added: "0.1.0"
description:
  - Connects O(count) times to each target, O(interval) seconds apart, all targets at once, and returns
    ping(8)'s statistics per target (loss, min/avg/max/stdev/median/p95, jitter, each rtt).
  - Pinging changes nothing, so the module runs in check mode too and never reports a change.
author: socketkit contributors (@socketkit)
requirements:
  - socketkit (C(pip install socketkit)) in the managed host's Python (C(ansible_python_interpreter)).
options:
  targets:
    description: C(host:port) strings.
    type: list
    elements: str
    required: true
    aliases: [target, host]
  port:
    description: Port for the targets that name none.
    type: int
  count:
    description: Probes per target.
    type: int
    default: 4
  interval:
    description: Seconds between probes, start to start.
    type: float
    default: 1.0
  timeout:
    description: Seconds per probe.
    type: float
    default: 1.0
  max_loss:
    description: Loss (fraction, 0 to 1) a target may have and still count as up.
    type: float
    default: 0.0
  family:
    description: Resolve and connect over this address family only.
    type: str
    choices: [ipv4, ipv6]
  source_address:
    description: Local address to connect from.
    type: str
  vantage:
    description: Where the pings ran from. Default the inventory host name.
    type: str
  fail_on_down:
    description: Fail the task when a target lost more than O(max_loss). V(false) returns RV(ok=false) instead.
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
- name: Latency from every site to the API, 10 probes
  socketkit.net.tcping:
    targets: api.example.org:443
    count: 10
    interval: 0.2
  register: latency
"""

RETURN = r"""
ok:
  description: Every target lost at most O(max_loss).
  returned: always
  type: bool
vantage:
  description: Where the pings ran from.
  returned: always
  type: str
msg:
  description: One line, naming each target over O(max_loss).
  returned: always
  type: str
elapsed:
  description: Seconds the module took.
  returned: always
  type: float
results:
  description: One per target, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    host: {description: The host., type: str}
    address: {description: The IP address pinged., type: str}
    port: {description: The port., type: int}
    sent: {description: Probes sent., type: int}
    received: {description: Probes that connected., type: int}
    loss: {description: Lost fraction., type: float}
    avg: {description: "Mean rtt in milliseconds (also min, max, stdev, median, p95, jitter).", type: float}
    rtts: {description: Each probe's rtt in milliseconds (null when lost)., type: list}
    vantage: {description: Where it was measured from., type: str}
"""

import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.socketkit.net.plugins.module_utils import common
from ansible_collections.socketkit.net.plugins.module_utils.common import ADDRESS_SPEC, COMMON_SPEC


def main():
    spec = {
        "targets": {"type": "list", "elements": "str", "required": True, "aliases": ["target", "host"]},
        "port": {"type": "int"},
        "count": {"type": "int", "default": 4},
        "interval": {"type": "float", "default": 1.0},
        "timeout": {"type": "float", "default": 1.0},
        "max_loss": {"type": "float", "default": 0.0},
        "msg": {"type": "str"},
        **ADDRESS_SPEC,
        **COMMON_SPEC,
    }
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    started = time.monotonic()

    def body():
        p = module.params
        if p["count"] < 1:
            raise ValueError("count must be 1 or more")
        targets = common.with_port(p["targets"], p["port"])

        def ping(t):
            return common.socketkit.tcping(
                t, count=p["count"], interval=p["interval"], timeout=p["timeout"], **common.address_kwargs(p)
            )

        # tcping releases the GIL: the targets are pinged side by side.
        with ThreadPoolExecutor(max(1, min(64, len(targets)))) as pool:
            stats = list(pool.map(ping, targets))
        down = [
            f"{t} lost {s.sent - s.received}/{s.sent}"
            for t, s in zip(targets, stats, strict=True)
            if s.loss > p["max_loss"]
        ]
        n = len(stats)
        what = f"{n} of {n} targets answered" if not down else f"{len(down)} of {n} targets lost probes"
        common.finish(module, [s.to_dict() for s in stats], bool(stats) and not down, what, down, started)

    common.run(module, body)


if __name__ == "__main__":
    main()
