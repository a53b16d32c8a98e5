"""``socketkit tls``: the certificate of each HOST:PORT (check_ssl_cert,
ssl-checker), built on :func:`socketkit.tls_check_many` (parsing and
dispatch are in ``cli``).

A target passes when its certificate verified (or ``--insecure``: whatever
the trust and name checks said) and stays valid for more than
``--warn-days`` days. The facts are printed either way.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any

import socketkit
from socketkit import _cli_nagios as nagios
from socketkit._cli_common import EXIT_DOWN, EXIT_OK, emit, progress
from socketkit._cli_service import add_address_options, add_tls_options, address_kwargs, tls_config
from socketkit._format import text_table
from socketkit.tls_results import TLS_FIELDS, TlsResult

__all__ = ["EXAMPLE", "EXIT_DOC", "HELP", "JSON_DOC", "add_options", "cmd_tls", "reason"]

#: The keys of each ``--json`` object: a ``TlsResult.to_dict()``, the
#: leaf's SANs, why the target failed the check, and where it ran from.
JSON_FIELDS = (*TLS_FIELDS, "sans", "reason", "vantage")

HELP = (
    "Check the TLS certificate of each HOST:PORT. "
    "Exit 0 only if every one verifies and stays valid for more than --warn-days days."
)
JSON_DOC = (
    "one JSON array, an object per target in the order given:\n  {" + ", ".join(JSON_FIELDS) + "}\n"
    "ok: the certificate verified; days_left: of the leaf, negative once expired;\n"
    "sans: the leaf's subject alternative names; reason: why the target fails\n"
    "(the line on stderr), null when it passes; vantage: where it ran from"
)
EXIT_DOC = (
    "0 every certificate verified and valid for more than --warn-days days, 1 any not;\n"
    "with --nagios 0 OK, 1 WARNING (within --warn-days, or slower than -w), 2 CRITICAL\n"
    "(expired, within --crit-days, not verified, or slower than --critical), 3 UNKNOWN"
)
EXAMPLE = (
    "examples: socketkit tls example.org:443 example.net:443 --warn-days 21\n"
    "          socketkit tls mail.example.org:25 --starttls smtp\n"
    "          socketkit tls 10.0.0.5:8443 --ca ca.pem --sni api.internal --json"
)

#: The most --warn-days takes: a century.
MAX_DAYS = 36500


def days(text: str) -> float:
    what = f"a number of days from 0 to {MAX_DAYS}"
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or not 0 <= v <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return v


def add_options(sp: argparse.ArgumentParser) -> None:
    """``tls``'s own options (the targets, --timeout and --concurrency are
    added by ``cli``, as for every probe)."""
    sp.add_argument(
        "--warn-days",
        type=days,
        default=0.0,
        metavar="N",
        help="fail when a certificate expires within N days (default 0: only once expired)",
    )
    sp.add_argument(
        "--crit-days",
        type=days,
        default=0.0,
        metavar="N",
        help="--nagios: CRITICAL when a certificate expires within N days (default 0: once expired)",
    )
    add_tls_options(sp)
    add_address_options(sp)


# --- what a result means -----------------------------------------------------------


def _when(r: TlsResult) -> str:
    assert r.cert is not None
    return r.cert.not_after.strftime("%Y-%m-%d %H:%M UTC")


def reason(r: TlsResult, warn_days: float, insecure: bool) -> str | None:
    """Why ``r`` fails the check, in one line; None when it passes."""
    if r.cert is None or r.days_left is None:
        return f"{r.state}: {r.error}" if r.error else r.state
    left = r.days_left
    if left <= 0:
        return f"certificate expired {-left:.1f} days ago (not after {_when(r)})"
    if r.state != "valid" and not insecure:
        return r.verify_error or "certificate did not verify"
    if left <= warn_days:
        return (
            f"certificate expires in {left:.1f} days (not after {_when(r)}), within --warn-days {warn_days:g}"
        )
    return None


def _cn(dn: str) -> str:
    """The CN of an RFC 4514 name (the whole name when it has none)."""
    for part in re.split(r"(?<!\\),", dn):
        key, _, value = part.partition("=")
        if key.strip().upper() == "CN":
            return re.sub(r"\\(.)", r"\1", value)
    return dn


def _sans(names: list[str], most: int = 3) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" +{len(names) - most} more" if len(names) > most else "")


def _row(r: TlsResult, why: str | None) -> list[str]:
    c = r.cert
    return [
        r.target,
        r.state,
        "-" if r.days_left is None else f"{r.days_left:.1f}",
        "-" if c is None else _when(r),
        "-" if c is None else _cn(c.subject),
        "-" if c is None else _cn(c.issuer),
        "-" if c is None else _sans(c.sans) or "-",
        r.version or "-",
        why or r.verify_error or r.error or "",
    ]


HEADERS = ["TARGET", "STATE", "DAYS LEFT", "NOT AFTER", "SUBJECT", "ISSUER", "SANS", "VERSION", "WHY"]


def _record(r: TlsResult, why: str | None) -> dict[str, Any]:
    return {**r.to_dict(), "sans": None if r.cert is None else list(r.cert.sans), "reason": why}


def cmd_tls(args: argparse.Namespace) -> int:
    tls = tls_config(args, wanted=True)
    results = socketkit.tls_check_many(
        args.targets,
        timeout=args.timeout,
        tls=tls,
        starttls=args.starttls,
        concurrency=args.concurrency,
        progress=None if args.nagios else progress(args),
        **address_kwargs(args),
    )
    if args.nagios:
        return nagios.tls_status(args, results)
    reasons = [reason(r, args.warn_days, args.insecure) for r in results]
    if args.json:
        emit([_record(r, why) for r, why in zip(results, reasons, strict=True)])
    else:
        print(text_table(HEADERS, [_row(r, why) for r, why in zip(results, reasons, strict=True)]))
    for r, why in zip(results, reasons, strict=True):
        if why is not None:
            print(f"socketkit tls: {r.target}: {why}", file=sys.stderr)
    return EXIT_OK if results and not any(reasons) else EXIT_DOWN
