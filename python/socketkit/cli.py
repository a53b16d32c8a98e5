"""The ``socketkit`` command line: check, scan, ping, wait, tls, serve, send, listen, exporter, report.

Tables for people, ``--json`` for pipelines, exit status 0 only when
everything asked for is up. Bad input is one line on stderr and exit 2;
a network failure is one line on stderr and exit 1; Ctrl-C is exit 130
(the shell's 128 + SIGINT); never a traceback. Options go anywhere on the
line, as in nc. Each subcommand's ``--help`` documents its ``--json``
output and exit statuses (``JSON_DOCS`` below, checked by the tests).

The commands themselves live in ``_cli_probes`` (check, scan, ping, wait)
and ``_cli_io`` (serve, send, listen), ``tls`` in ``_cli_tls``, ``report`` in
``_cli_report``, the service-check
options in ``_cli_service``; this module parses and dispatches.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import socketkit
from socketkit import _cli_nagios as nagios
from socketkit import _cli_report, _cli_tls
from socketkit._cli_common import (
    EXIT_DOWN,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    error_text,
    set_vantage,
)
from socketkit._cli_io import cmd_exporter, cmd_listen, cmd_send, cmd_serve
from socketkit._cli_probes import cmd_check, cmd_ping, cmd_scan, cmd_wait
from socketkit._cli_service import SERVICE_FIELDS, add_address_options, add_check_options
from socketkit._core import DEFAULTS as _D
from socketkit._format import CHECK_FIELDS, PING_SUMMARY_FIELDS
from socketkit._format import target_of as _target_text  # ping's name for it

__all__ = ["JSON_DOCS", "build_parser", "main"]
_ = _target_text  # re-exported: the tests compare it with the reprs

#: The largest number of seconds an option takes: a year. Past it a value
#: is a typo (``1e308``), and ``time.sleep`` overflows.
MAX_SECONDS = 365 * 86400


# --- option values, checked before anything runs ----------------------------------


def _number(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    return v


def seconds(text: str) -> float:
    """Seconds: a finite number from 0 to a year (the value echoed as typed)."""
    what = f"a number of seconds from 0 to {MAX_SECONDS}"
    v = _number(text, what)
    if not math.isfinite(v) or not 0 <= v <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return v


def rate(text: str) -> float:
    what = "a positive number of connections per second"
    v = _number(text, what)
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return v


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An int from ``lo`` to ``hi``, the range stated in the message."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer from {lo} to {hi}, got {text!r}")
        return v

    parse.__name__ = "integer"
    return parse


# --- what each subcommand prints with --json ----------------------------------------

_CHECK = "{" + ", ".join(CHECK_FIELDS) + "}"
_CHECK_V = "{" + ", ".join((*CHECK_FIELDS, "vantage")) + "}"
_PING = "{" + ", ".join(("seq", "time", *CHECK_FIELDS, "vantage")) + "}"
_SUMMARY = "{" + ", ".join(PING_SUMMARY_FIELDS) + "}"
_VANTAGE = "vantage: where the record was measured from (--vantage NAME; default: the host name)"

#: Per subcommand: its ``--json`` output, every object's keys in braces.
#: tests/test_cli_first_hour.py compares these keys with the real output.
JSON_DOCS = {
    "check": f"one JSON array, an object per target in the order given:\n  {_CHECK_V}\n"
    "with --tls, --starttls, --send/--expect or --service (a service check), each\n  {"
    + ", ".join((*SERVICE_FIELDS, "vantage"))
    + "}\nfailed_step: 0-based index of the step that failed; received: what arrived during it;\n"
    + _VANTAGE,
    "tls": _cli_tls.JSON_DOC,
    "scan": "one JSON object:\n  {hosts, ports, elapsed, counts, open, results, vantage}\n"
    "hosts: the hosts scanned; ports: ports per host; elapsed: seconds;\n"
    "counts: state -> number; open: host -> open ports; results: every port\n"
    f"scanned (only the open ones with --open), each\n  {_CHECK}\n{_VANTAGE}",
    "ping": f"JSON lines, one per probe:\n  {_PING}\nthen one summary line {{summary, vantage}} holding\n"
    f"  {_SUMMARY}\n"
    "time: Unix time the probe started; longest_up, longest_down: null or\n  {start, end, seconds}\n"
    "address_changes: [time, old, new] per change of the address pinged",
    "wait": "one JSON object (before CMD runs):\n  {targets, waited_s, ok, vantage}\n"
    "and, when the wait timed out,\n  {targets, waited_s, ok, error, vantage}",
    "serve": "one JSON line once listening:\n  {listening, proto, mode, vantage}",
    "send": "one JSON object:\n  {target, proto, sent, reply, rtt_ms, vantage}\n"
    "sent: bytes sent; reply: the reply as UTF-8 with \\xNN escapes (null with --no-reply)",
    "listen": "JSON lines, one per chunk (TCP) or datagram (UDP):\n  {peer, data, vantage}",
    "exporter": "one JSON line once listening:\n  {listening, config, modules, vantage}",
    "report": _cli_report.JSON_DOC,
}

EXIT_DOCS = {
    "check": "0 every target open, 1 any not open; with --nagios 0 OK, 1 WARNING (slower than -w),\n"
    "2 CRITICAL (not open, or slower than -c), 3 UNKNOWN (bad arguments too)",
    "tls": _cli_tls.EXIT_DOC,
    "scan": "0 any port open, 1 none open",
    "ping": "0 every probe connected, 1 any lost; without -c, Ctrl-C ends the run with the summary\n"
    "and that status (with -c, Ctrl-C prints the summary and exits 130); with --nagios 0 OK,\n"
    "1 WARNING (some lost, or avg over -w), 2 CRITICAL (all lost, or avg over --critical), 3 UNKNOWN",
    "wait": "CMD's own status, 0 without CMD; 124 timed out (as timeout(1)); 127 CMD not found",
    "serve": "0 stopped by SIGTERM",
    "send": "0 sent (and the reply read), 1 the network failed",
    "listen": "0 the connection ended",
    "exporter": "0 stopped by SIGTERM (SIGHUP reloads the config, a broken one is ignored)",
    "report": _cli_report.EXIT_DOC,
}

EXAMPLES = {
    "check": "example: socketkit check 127.0.0.1:22 localhost:6379 --timeout 0.5\n"
    "         socketkit check db:5432 --nagios -w 0.5 -c 1  (a Nagios/Icinga check_tcp)\n"
    "         socketkit check localhost:domain --udp\n"
    "         socketkit check localhost:6379 --send 'PING\\r\\n' --expect '+PONG'\n"
    "         socketkit check example.org:443 --tls\n"
    "         socketkit check localhost:6379 --service redis -6",
    "tls": _cli_tls.EXAMPLE,
    "scan": "examples: socketkit scan 127.0.0.1 -p 22,80,8000-8100 --open\n"
    "          socketkit scan 10.0.0.0/30 -p- --rate 500 --json\n"
    "          socketkit scan 127.0.0.1 -p domain,ntp --udp",
    "ping": "examples: socketkit ping localhost:6379 -c 5 -i 0.2\n"
    "          socketkit ping db:5432 -D --failures-only --resolve-every 3",
    "wait": "examples: socketkit wait db:5432 cache:6379 --timeout 60 -- ./migrate.sh\n"
    "          socketkit wait 0.0.0.0:8080 --state drained --timeout 300 -- systemctl stop app",
    "serve": "examples: socketkit serve echo 127.0.0.1:7000\n          socketkit serve discard --udp",
    "send": "examples: socketkit send localhost:6379 'PING\\r\\n' --until '\\r\\n'\n"
    "          echo hello | socketkit send 127.0.0.1:7000 --udp\n"
    "          socketkit send 127.0.0.1:8125 'hits:1|c' --udp --no-reply",
    "listen": "examples: socketkit listen 127.0.0.1:9000\n          socketkit listen 127.0.0.1:9000 --udp --json",
    "exporter": "examples: socketkit exporter --config blackbox.yml\n"
    "          curl '127.0.0.1:9115/probe?target=db:5432&module=tcp_connect'",
    "report": _cli_report.EXAMPLE,
}


def _epilog(name: str) -> str:
    return (
        f"{EXAMPLES[name]}\n\n--json output: {JSON_DOCS[name]}\n\n"
        f"exit status: {EXIT_DOCS[name]}; 2 bad input; 130 interrupted (Ctrl-C)"
    )


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _timeout(sp: argparse.ArgumentParser, default: float, what: str) -> None:
    sp.add_argument(
        "--timeout", type=seconds, default=default, metavar="S", help=f"{what} (default %(default)s)"
    )


def _udp(sp: argparse.ArgumentParser, what: str) -> None:
    sp.add_argument("-u", "--udp", action="store_true", help=what)


def _nagios(sp: argparse.ArgumentParser, short_critical: str | None = None) -> None:
    sp.add_argument(
        "--nagios",
        action="store_true",
        help="Nagios/Icinga plugin output: one status line with perfdata; exit 0 OK, 1 WARNING, "
        "2 CRITICAL, 3 UNKNOWN",
    )
    sp.add_argument(
        "-w", "--warning", type=seconds, default=None, metavar="S", help="--nagios: WARNING above S seconds"
    )
    flags = [short_critical, "--critical"] if short_critical else ["--critical"]
    sp.add_argument(
        *flags, type=seconds, default=None, metavar="S", help="--nagios: CRITICAL above S seconds"
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="socketkit",
        description="TCP/UDP probes, test servers and one-shot clients (nc, nmap -sT, tcping, wait-for-it).",
        epilog="Run 'socketkit COMMAND --help' for each command's options, --json output and an example.\n"
        "Exit status: 0 everything asked for is up, 1 something is not, 2 bad input, 130 Ctrl-C.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"socketkit {socketkit.__version__}")
    sub = p.add_subparsers(dest="command_name", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_epilog(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.add_argument("--json", action="store_true", help="machine-readable output (described below)")
        sp.add_argument(
            "--vantage",
            default=None,
            metavar="NAME",
            help="--json: where this runs from, in every record (default: the host name)",
        )
        return sp

    sp = add("check", "Is each HOST:PORT open? Exit 0 only if all are. Ports may be service names.")
    sp.add_argument("targets", nargs="+", metavar="HOST:PORT")
    _timeout(sp, _D["check_timeout"], "seconds per probe")
    sp.add_argument(
        "--concurrency",
        type=int_in(1, 65536),
        default=_D["check_concurrency"],
        help="probes at once (default %(default)s)",
    )
    _udp(sp, "UDP probe: an empty datagram, open|filtered when nothing answers (nmap -sU)")
    _nagios(sp, "-c")
    add_check_options(sp)
    add_address_options(sp)
    sp.set_defaults(func=cmd_check)

    sp = add("scan", "TCP connect scan of hosts (names, IPs, CIDR) and ports. Exit 0 if any port is open.")
    sp.add_argument("hosts", nargs="+", metavar="HOSTS")
    sp.add_argument(
        "-p",
        "--ports",
        default=_D["scan_ports"],
        help="ports as nmap writes them: 22,80,8000-8100, service names; -p- for all (default %(default)s)",
    )
    sp.add_argument("--open", action="store_true", help="list only open ports")
    sp.add_argument(
        "-a",
        "--all",
        action="store_true",
        dest="show_all",
        help="list closed ports too (default: count them)",
    )
    _timeout(sp, _D["scan_timeout"], "seconds per connect")
    sp.add_argument(
        "--concurrency",
        type=int_in(1, 65536),
        default=_D["scan_concurrency"],
        help="connects at once (default %(default)s)",
    )
    sp.add_argument("--rate", type=rate, default=None, help="new connections per second at most")
    _udp(sp, "UDP scan: an empty datagram per port (nmap -sU); silence is open|filtered")
    add_address_options(sp)
    sp.set_defaults(func=cmd_scan, all_ports=False)

    sp = add("ping", "Time TCP handshakes to HOST:PORT, like ping. Exit 0 if every probe connected.")
    sp.add_argument("target", metavar="HOST:PORT")
    sp.add_argument(
        "-c",
        "--count",
        type=int_in(1, 2**31 - 1),
        default=None,
        help="probes to send (default: until Ctrl-C, then the summary)",
    )
    sp.add_argument(
        "-i",
        "--interval",
        type=seconds,
        default=_D["ping_interval"],
        metavar="S",
        help="seconds between probes (default %(default)s)",
    )
    _timeout(sp, _D["ping_timeout"], "seconds per probe")
    sp.add_argument(
        "--deadline", type=seconds, default=None, metavar="S", help="stop after S seconds (ping -w)"
    )
    sp.add_argument("-D", dest="timestamps", action="store_true", help="start each line with its Unix time")
    sp.add_argument("--failures-only", action="store_true", help="print only the probes that failed")
    sp.add_argument(
        "--resolve-every",
        type=int_in(1, 2**31 - 1),
        default=None,
        metavar="N",
        help="resolve the name again after N failures in a row (the summary lists address changes)",
    )
    _nagios(sp)
    add_address_options(sp)
    sp.set_defaults(func=cmd_ping)

    sp = add("wait", "Wait until every HOST:PORT accepts connections, then run CMD (wait-for-it).")
    sp.add_argument("targets", nargs="+", metavar="HOST:PORT")
    _timeout(sp, _D["wait_timeout"], "give up after S seconds, exit 124")
    sp.add_argument(
        "--interval",
        type=seconds,
        default=_D["wait_interval"],
        metavar="S",
        help="first retry delay in seconds, backing off (default %(default)s)",
    )
    sp.add_argument("--send", default=None, help="bytes to send once connected (backslash escapes)")
    sp.add_argument("--expect", default=None, help="bytes the reply must contain to count as up")
    sp.add_argument(
        "--state",
        choices=["open", "closed", "drained"],
        default="open",
        metavar="STATE",
        help="open: accepting (default); closed: refusing or silent; "
        "drained: no connection left on the port on this machine",
    )
    sp.add_argument(
        "--delay",
        type=seconds,
        default=0.0,
        metavar="S",
        help="seconds before the first try (within --timeout)",
    )
    sp.add_argument(
        "--connect-timeout", type=seconds, default=None, metavar="S", help="seconds per try (default 5)"
    )
    sp.add_argument(
        "--drain-ignore",
        default="TIME_WAIT",
        metavar="STATES",
        help="with --state drained: TCP states that do not count, comma-separated (default %(default)s)",
    )
    sp.add_argument("-q", "--quiet", action="store_true", help="say nothing on stderr")
    add_address_options(sp)
    sp.set_defaults(func=cmd_wait, command=[])
    sp.usage = sp.format_usage().removeprefix("usage: ").rstrip() + " [-- CMD [ARG ...]]"

    sp = add("tls", _cli_tls.HELP)
    sp.add_argument("targets", nargs="+", metavar="HOST:PORT")
    _timeout(sp, socketkit.tls_probes.TLS_TIMEOUT, "seconds per target: connect, STARTTLS and handshake")
    sp.add_argument(
        "--concurrency",
        type=int_in(1, 256),
        default=socketkit.tls_probes.TLS_CONCURRENCY,
        help="handshakes at once (default %(default)s)",
    )
    _cli_tls.add_options(sp)
    _nagios(sp)
    sp.set_defaults(func=_cli_tls.cmd_tls)

    sp = add("serve", "Run a test server in the foreground until Ctrl-C or SIGTERM.")
    sp.add_argument("mode", choices=["echo", "discard"])
    sp.add_argument("address", nargs="?", default="127.0.0.1:0", metavar="ADDR", help="default 127.0.0.1:0")
    _udp(sp, "serve UDP instead of TCP")
    sp.set_defaults(func=cmd_serve)

    sp = add("send", "Send DATA (or stdin) to HOST:PORT and print the reply (nc one-shot).")
    sp.add_argument("target", metavar="HOST:PORT")
    sp.add_argument(
        "data", nargs="?", metavar="DATA|-", help="bytes with backslash escapes; - or absent: stdin"
    )
    _udp(sp, "send one datagram and print one reply datagram")
    sp.add_argument(
        "-n", "--no-reply", action="store_true", help="send and exit, read no reply (statsd, syslog; nc -w0)"
    )
    sp.add_argument("--until", default=None, metavar="DELIM", help="TCP: read the reply up to DELIM, not EOF")
    _timeout(sp, 5.0, "seconds for the connect and for the reply")
    sp.add_argument(
        "--retries",
        type=int_in(0, 100),
        default=_D["udp_retries"],
        help="UDP: resends on silence (default %(default)s)",
    )
    sp.add_argument(
        "--max-size",
        type=int_in(1, 2**40),
        default=16 << 20,
        metavar="BYTES",
        help="largest reply in bytes (default 16 MiB)",
    )
    sp.set_defaults(func=cmd_send)

    sp = add("listen", "Print what arrives on ADDR (nc -l).")
    sp.add_argument("address", metavar="ADDR")
    _udp(sp, "receive datagrams; each is printed on its own line")
    sp.add_argument(
        "-k", "--keep", action="store_true", help="TCP: keep accepting after the first connection"
    )
    sp.set_defaults(func=cmd_listen)

    sp = add(
        "exporter",
        "Prometheus exporter, blackbox_exporter-compatible: /probe?target=HOST:PORT&module=NAME and /metrics.",
    )
    sp.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="modules in blackbox_exporter's YAML layout (default: built-in tcp_connect, udp, tcping)",
    )
    sp.add_argument(
        "--listen",
        default="127.0.0.1:9115",
        metavar="ADDR",
        help="address to serve HTTP on (default %(default)s; 0.0.0.0:9115 for every interface)",
    )
    sp.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes serving the one port (default: the CPU count; SIGHUP and SIGTERM reach them all)",
    )
    sp.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default=None, help="log to stderr"
    )
    sp.set_defaults(func=cmd_exporter)

    sp = add("report", _cli_report.HELP)
    _cli_report.add_options(sp)
    sp.set_defaults(func=_cli_report.cmd_report)
    return p


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """`wait A B -- cmd args`: what follows `--` is the command to run."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def parse(argv: list[str]) -> argparse.Namespace:
    own, command = _split_command(argv)
    # nmap's `-p-` (all ports) is not something argparse can read.
    all_ports = "-p-" in own
    own = [a for a in own if a != "-p-"]
    parser = build_parser()
    subs = _subparsers(parser)
    name = own[0] if own else None
    if name in subs:
        # Options anywhere, positionals in order (nc's way): argparse's
        # intermixed parsing, which works per subcommand only.
        sp = subs[name]
        args = sp.parse_intermixed_args(own[1:])
        args.command_name = name
    else:
        args = parser.parse_args(own)  # --help, --version, or the error
        sp = parser
    if command and args.command_name != "wait":
        sp.error("'-- CMD' is only for 'wait'")
    args.command = command
    if all_ports:
        if args.command_name != "scan":
            sp.error("-p- is only for 'scan'")
        args.all_ports = True
    return args


def _parse_nagios(argv: list[str]) -> argparse.Namespace | int:
    """parse(), with a usage error as the plugin guidelines want it: an
    UNKNOWN status line on stdout and exit 3."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parse(argv)
    except SystemExit as e:
        if e.code in (0, None):
            raise
        return nagios.unknown(err.getvalue().strip() or "bad arguments")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--nagios" in _split_command(argv)[0]:
        parsed = _parse_nagios(argv)
        if isinstance(parsed, int):
            return parsed
        args = parsed
    else:
        args = parse(argv)
    prog = f"socketkit {args.command_name}"
    set_vantage(getattr(args, "vantage", None))
    func: Callable[[Any], int] = args.func
    if getattr(args, "nagios", False):
        try:
            return int(func(args))
        except (UsageError, ValueError, TypeError, OSError) as e:
            return nagios.unknown(f"{prog}: {e}")
        except KeyboardInterrupt:
            return nagios.unknown(f"{prog}: interrupted")
    try:
        return int(func(args))
    except (UsageError, ValueError, TypeError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:
        print(f"{prog}: {error_text(e)}", file=sys.stderr)
        return EXIT_DOWN
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
