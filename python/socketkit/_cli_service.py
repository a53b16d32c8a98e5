"""Service-check and address options of the command line: ``-4``/``-6``,
``--source``; TLS (``--tls``, ``--starttls``,
``--ca``, ``--cert``/``--key``, ``--sni``, ``--insecure``), dialogues
(``--send``/``--expect``/``--regex``, ``--service``), shared by ``check``
and ``tls``, and how ``check`` reports a dialogue step that failed."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import socketkit
from socketkit._cli_common import UsageError, decode_data
from socketkit._format import CHECK_FIELDS, TIMING_FIELDS
from socketkit.service import STARTTLS, Expect, Send, StartTls, Step, _tail

#: The keys of a service check's JSON object (``check`` with ``--tls``,
#: ``--starttls``, ``--send``/``--expect`` or ``--service``): the eight of a
#: port check, then what ``CheckResult.to_dict()`` adds for a service check.
SERVICE_FIELDS = (
    *CHECK_FIELDS,
    *TIMING_FIELDS,
    "captures",
    "failed_step",
    "received",
    "tls_version",
    "tls_verified",
    "tls_verify_error",
)

# --- -4 / -6 / --source: address control on every probe subcommand ------------------

#: argparse's test for "looks like a negative number", minus -4 and -6: with
#: it, those two are options while `--timeout -1` still reaches the value's
#: own check (argparse treats every negative number as an option once any
#: option looks like one).
_NEGATIVE_NUMBER = re.compile(r"^-(?![46]$)\d+$|^-\d*\.\d+$")


def add_address_options(sp: argparse.ArgumentParser) -> None:
    """``-4``/``-6`` (ping's, nc's and curl's flags) and ``--source ADDR``."""
    g = sp.add_mutually_exclusive_group()
    # Each argparse container (the parser, its option groups) has its own.
    for container in (sp, sp._optionals, sp._positionals, g):
        container._negative_number_matcher = _NEGATIVE_NUMBER  # type: ignore[attr-defined]
    g.add_argument("-4", dest="family", action="store_const", const="ipv4", help="IPv4 addresses only")
    g.add_argument("-6", dest="family", action="store_const", const="ipv6", help="IPv6 addresses only")
    sp.add_argument(
        "--source",
        default=None,
        metavar="ADDR",
        help="connect from this local address: IP, IP:PORT or [IPv6]:PORT",
    )


def address_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``family=`` and ``source_address=`` for the library, from the options."""
    return {"family": getattr(args, "family", None), "source_address": getattr(args, "source", None)}


class _DialogueStep(argparse.Action):
    """``--send`` and ``--expect`` into one list, in the order given."""

    def __call__(self, parser: Any, ns: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        items = list(getattr(ns, self.dest, None) or [])
        items.append((self.const, values))
        setattr(ns, self.dest, items)


def add_tls_options(sp: argparse.ArgumentParser) -> None:
    """The TLS options ``check`` and ``tls`` share."""
    sp.add_argument(
        "--starttls",
        type=str.lower,
        choices=STARTTLS,
        metavar="PROTO",
        help=f"plaintext exchange, then TLS: {', '.join(STARTTLS)}",
    )
    sp.add_argument("--ca", metavar="FILE", help="PEM CA certificates to trust besides the system's")
    sp.add_argument("--cert", metavar="FILE", help="client certificate (PEM, leaf first)")
    sp.add_argument("--key", metavar="FILE", help="client certificate's key (PEM; default: in --cert)")
    sp.add_argument("--sni", metavar="NAME", help="server name to send and verify (default: the host)")
    sp.add_argument(
        "-k",
        "--insecure",
        action="store_true",
        help="accept a certificate that does not verify (untrusted, wrong name)",
    )


def add_check_options(sp: argparse.ArgumentParser) -> None:
    """``check``'s service-check options."""
    sp.add_argument(
        "--tls", action="store_true", help="TLS from the first byte: open only if the handshake is"
    )
    add_tls_options(sp)
    sp.add_argument(
        "--send",
        dest="dialogue",
        action=_DialogueStep,
        const="send",
        metavar="DATA",
        help="send DATA (backslash escapes; nothing appended); repeat for more steps",
    )
    sp.add_argument(
        "--expect",
        dest="dialogue",
        action=_DialogueStep,
        const="expect",
        metavar="TEXT",
        help="wait for TEXT in the reply (backslash escapes); steps run in the order given",
    )
    sp.add_argument("--regex", action="store_true", help="every --expect is a regular expression")
    sp.add_argument(
        "--service",
        type=str.lower,
        choices=sorted(socketkit.SERVICES),
        metavar="NAME",
        help=f"ready dialogue: {', '.join(sorted(socketkit.SERVICES))}",
    )


def _readable(option: str, path: str | None) -> None:
    if path is not None and not os.access(path, os.R_OK):
        raise UsageError(f"{option}: cannot read {path!r}")


def tls_config(args: argparse.Namespace, *, wanted: bool) -> socketkit.TlsConfig | None:
    """The ``TlsConfig`` the options ask for; None when ``wanted`` is false
    (no TLS on this run) and no TLS option was given."""
    given = [
        o
        for o, v in (("--ca", args.ca), ("--cert", args.cert), ("--key", args.key), ("--sni", args.sni))
        if v is not None
    ] + (["--insecure"] if args.insecure else [])
    if not wanted:
        if given:
            raise UsageError(f"{given[0]} needs --tls or --starttls")
        return None
    if args.key is not None and args.cert is None:
        raise UsageError("--key needs --cert")
    _readable("--ca", args.ca)
    _readable("--cert", args.cert)
    _readable("--key", args.key)
    return socketkit.TlsConfig(
        verify=not args.insecure,
        ca_file=args.ca,
        cert_file=args.cert,
        key_file=args.key,
        server_hostname=args.sni,
    )


def _steps(args: argparse.Namespace) -> list[Step] | None:
    dialogue = getattr(args, "dialogue", None) or []
    if args.regex and not any(kind == "expect" for kind, _ in dialogue):
        raise UsageError("--regex needs --expect")
    if not dialogue:
        return None
    if args.service is not None:
        raise UsageError("--service and --send/--expect: give one of them")
    steps: list[Step] = []
    for kind, text in dialogue:
        if kind == "send":
            steps.append(Send(decode_data(text)))
        elif args.regex:
            # A regex has its own escapes (\d, \b, \r): passed as typed.
            steps.append(Expect(text.encode(), regex=True))
        else:
            steps.append(Expect(decode_data(text)))
    return steps


def check_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``check_many``'s service-check arguments; empty for a port check."""
    steps = _steps(args)
    tls = tls_config(args, wanted=args.tls or args.starttls is not None)
    if steps is None and args.service is None and tls is None:
        return {}
    if args.udp:
        raise UsageError("--udp takes no --tls, --starttls, --send/--expect or --service")
    kw = {"steps": steps, "service": args.service, "tls": tls, "starttls": args.starttls}
    try:
        # No target: the steps are checked (a bad regex) and nothing runs.
        socketkit._probe_core._service_check_many([], **kw)
    except ValueError as e:
        raise UsageError(_one_line(str(e))) from None
    return kw


def _one_line(message: str) -> str:
    """The regex crate's multi-line parse error as one line: what it was
    parsing, then the error's last line."""
    lines = message.splitlines()
    if len(lines) < 2:
        return message
    return f"{lines[0].removesuffix(': regex parse error:')}: {lines[-1].removeprefix('error: ')}"


def _describe(step: Step) -> str:
    if isinstance(step, Send):
        return f"send {step.data!r}"
    if isinstance(step, Expect):
        return f"expect {'regex ' if step.regex else ''}{step.pattern!r}"
    assert isinstance(step, StartTls)
    return "starttls"


def step_failures(results: Iterable[socketkit.CheckResult], kw: dict[str, Any]) -> list[str]:
    """One line per result whose dialogue failed: which step, why, and
    what arrived instead."""
    steps: Sequence[Step] = kw.get("steps") or socketkit.SERVICES.get(kw.get("service") or "", ())
    out = []
    for r in results:
        i = r.failed_step
        if i is None:
            continue
        what = f" ({_describe(steps[i])})" if i < len(steps) else ""
        why = (r.error or r.state).removeprefix(f"step {i}: ")
        out.append(
            f"{r.target}: step {i}{what} failed: {why}; received {_tail(r.received) if r.received else 'nothing'}"
        )
    return out


def print_step_failures(prog: str, results: Iterable[socketkit.CheckResult], kw: dict[str, Any]) -> None:
    for line in step_failures(results, kw):
        print(f"{prog}: {line}", file=sys.stderr)
