#!/usr/bin/python
# Copyright: socketkit contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tls
short_description: TLS certificate facts and days left, from the managed host
version_added: "0.1.0"
description:
  - Makes a TLS handshake with every target at once (STARTTLS too) from the managed host and returns the
    certificate's facts (subject, issuer, SANs, expiry, days left, fingerprint), the protocol version,
    whether it verified and why not.
  - A target passes when its certificate verified and stays valid for more than O(warn_days) days.
  - The handshake changes nothing, so the module runs in check mode too and never reports a change.
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
  timeout:
    description: Seconds per target (connect, STARTTLS and handshake).
    type: float
    default: 3.0
  tls:
    description:
      - V(true) (the system's trust roots) or a dict of C(socketkit.TlsConfig) arguments (C(verify),
        C(ca_file), C(cert_file), C(key_file), C(server_hostname), C(min_version), C(max_version), C(alpn)).
    type: raw
    default: true
  starttls:
    description: Plaintext exchange before TLS.
    type: str
    choices: [smtp, imap, pop3, ftp, postgres]
  concurrency:
    description: Handshakes at once.
    type: int
    default: 256
  warn_days:
    description: Fail a certificate that expires within this many days.
    type: float
    default: 0
  family:
    description: Resolve and connect over this address family only.
    type: str
    choices: [ipv4, ipv6]
  source_address:
    description: Local address to connect from.
    type: str
  vantage:
    description: Where the handshakes ran from. Default the inventory host name.
    type: str
  fail_on_down:
    description: Fail the task when a target does not pass. V(false) returns RV(ok=false) instead.
    type: bool
    default: true
  msg:
    description: The failure message instead of the default one.
    type: str
notes:
  - Supports check mode and never reports a change.
  - "With C(verify: false) in O(tls) the trust and name checks do not fail a target; an expired certificate still does."
  - A host whose Python lacks socketkit fails with C(msg) saying to run C(pip install socketkit) on that host.
seealso:
  - module: socketkit.net.check
"""

EXAMPLES = r"""
- name: Every certificate valid for three more weeks, seen from each site
  socketkit.net.tls:
    targets: [example.org:443, mail.example.org:25]
    starttls: smtp
    warn_days: 21

- name: An internal API, with its private CA and name
  socketkit.net.tls:
    targets: 10.0.0.5:8443
    tls: {ca_file: /etc/ssl/internal-ca.pem, server_hostname: api.internal}
  register: api_cert
"""

RETURN = r"""
ok:
  description: Every certificate verified and stays valid for more than O(warn_days) days.
  returned: always
  type: bool
vantage:
  description: Where the handshakes ran from.
  returned: always
  type: str
msg:
  description: One line, naming each target that fails and why.
  returned: always
  type: str
  sample: "1 of 1 targets fail from web1: mail:25 certificate expires in 3.0 days, within warn_days 21"
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
    state: {description: "V(valid), V(invalid), or the connect state (V(closed), V(filtered), V(error)).", type: str}
    ok: {description: The certificate verified., type: bool}
    verify_error: {description: Why it did not verify., type: str}
    version: {description: TLS version., type: str}
    subject: {description: The leaf's subject (RFC 4514)., type: str}
    issuer: {description: The leaf's issuer., type: str}
    not_after: {description: "The leaf's expiry (ISO 8601, UTC).", type: str}
    days_left: {description: "Days until expiry, negative once expired.", type: float}
    sha256: {description: The leaf's fingerprint., type: str}
    sans: {description: The leaf's subject alternative names., type: list}
    reason: {description: "Why the target fails, null when it passes.", type: str}
    vantage: {description: Where it was measured from., type: str}
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.socketkit.net.plugins.module_utils import common
from ansible_collections.socketkit.net.plugins.module_utils.common import ADDRESS_SPEC, COMMON_SPEC


def reason(r, warn_days, verify):
    """Why ``r`` fails, in one line; None when it passes."""
    if r.cert is None or r.days_left is None:
        return f"{r.state}: {r.error}" if r.error else r.state
    if r.days_left <= 0:
        return f"certificate expired {-r.days_left:.1f} days ago"
    if r.state != "valid" and verify:
        return r.verify_error or "certificate did not verify"
    if r.days_left <= warn_days:
        return f"certificate expires in {r.days_left:.1f} days, within warn_days {warn_days:g}"
    return None


def main():
    spec = {
        "targets": {"type": "list", "elements": "str", "required": True, "aliases": ["target", "host"]},
        "port": {"type": "int"},
        "timeout": {"type": "float", "default": 3.0},
        "tls": {"type": "raw", "default": True},
        "starttls": {"type": "str", "choices": ["smtp", "imap", "pop3", "ftp", "postgres"]},
        "concurrency": {"type": "int", "default": 256},
        "warn_days": {"type": "float", "default": 0},
        "msg": {"type": "str"},
        **ADDRESS_SPEC,
        **COMMON_SPEC,
    }
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    started = time.monotonic()

    def body():
        p = module.params
        tls = common.tls_config(p["tls"])
        if tls is False:
            raise ValueError("tls: false leaves nothing to check; give true or a dict")
        results = common.socketkit.tls_check_many(
            common.with_port(p["targets"], p["port"]),
            timeout=p["timeout"],
            tls=tls,
            starttls=p["starttls"],
            concurrency=p["concurrency"],
            **common.address_kwargs(p),
        )
        verify = not (isinstance(p["tls"], dict) and p["tls"].get("verify") is False)
        dicts, down = [], []
        for r in results:
            why = reason(r, p["warn_days"], verify)
            dicts.append(
                {**r.to_dict(), "sans": None if r.cert is None else list(r.cert.sans), "reason": why}
            )
            if why:
                down.append(f"{r.target} {why}")
        n = len(dicts)
        what = f"{n} of {n} certificates pass" if not down else f"{len(down)} of {n} targets fail"
        common.finish(module, dicts, bool(dicts) and not down, what, down, started)

    common.run(module, body)


if __name__ == "__main__":
    main()
