"""The ``socketkit`` command line: check, scan, ping, wait, serve, send, listen.

Tables for people, ``--json`` for pipelines, exit status 0 only when
everything asked for is up. Bad input is one line on stderr and exit 2;
a network failure is one line on stderr and exit 1; never a traceback.

JSON output (``--json``):

* ``check``: one JSON document, a list of results
  ``{"host", "address", "port", "proto", "state", "ok", "rtt_ms", "error"}``.
* ``scan``: one JSON document ``{"hosts", "ports", "elapsed_s", "counts",
  "results": [...]}``; with ``--open`` only the open ports are listed.
* ``ping``: JSON lines, one per probe ``{"seq", "host", "address", "port",
  "state", "rtt_ms", "error"}``, then one summary line ``{"summary": {...}}``.
* ``wait``: one JSON document ``{"targets", "waited_s", "ok"}`` (before CMD runs).
* ``serve``: one JSON line ``{"listening": "host:port", "proto", "mode"}``.
* ``send``: one JSON document ``{"target", "proto", "sent", "reply", "rtt_ms"}``
  (``reply`` decoded as UTF-8 with backslash escapes for other bytes).
* ``listen``: JSON lines ``{"peer", "data"}`` per chunk or datagram.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import socketkit
from socketkit._core import DEFAULTS as _D
from socketkit._format import fmt_bytes, fmt_counts, fmt_target, result_table
from socketkit._format import target_of as _target_text  # ping's name for it

EXIT_OK = 0
EXIT_DOWN = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 124  # as coreutils timeout(1), which wait-for-it.sh uses


class UsageError(Exception):
    """Bad input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _decode_data(text: str) -> bytes:
    """DATA as typed on a command line: backslash escapes (``\\r\\n``, ``\\x00``)."""
    try:
        return codecs.escape_decode(text.encode())[0]  # type: ignore[attr-defined,no-any-return]
    except ValueError as e:
        raise UsageError(f"DATA: {e}") from None


def _emit(doc: Any) -> None:
    print(json.dumps(doc), flush=True)


def _progress(args: argparse.Namespace) -> bool | None:
    return True if sys.stderr.isatty() and not getattr(args, "json", False) else None


# --- check -----------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    results = socketkit.check_many(
        args.targets, timeout=args.timeout, concurrency=args.concurrency, progress=_progress(args)
    )
    if args.json:
        _emit(results.to_dicts())
    else:
        print(result_table(results, ("target", "address", "state", "time", "error")))
    return EXIT_OK if all(r.ok for r in results) else EXIT_DOWN


# --- scan ------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace) -> int:
    ports = "1-65535" if args.all_ports else args.ports
    report = socketkit.scan(
        args.hosts,
        ports,
        timeout=args.timeout,
        concurrency=args.concurrency,
        rate=args.rate,
        progress=_progress(args),
    )
    shown = [r for r in report if r.ok] if args.open else list(report)
    if args.json:
        doc = report.to_dict()
        doc["results"] = [r.to_dict() for r in shown]
        _emit(doc)
    else:
        if shown:
            print(result_table(shown, ("host", "address", "port", "state", "time")))
        print(
            f"scanned {len(report.hosts)} host(s), {len(report)} port(s) in {report.elapsed:.2f} s: "
            + fmt_counts(report.counts)
        )
    return EXIT_OK if any(r.ok for r in report) else EXIT_DOWN


# --- ping ------------------------------------------------------------------


def cmd_ping(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise UsageError(f"-c/--count must be at least 1, got {args.count}")
    if args.interval < 0:
        raise UsageError(f"-i/--interval must be non-negative, got {args.interval}")
    rtts: list[float | None] = []
    errors: list[str | None] = []
    first = None
    if not args.json:
        print(f"TCPING {args.target}: {args.count} probe(s), timeout {args.timeout} s")
    # One ping every interval, start to start, as tcping() does.
    pings = socketkit._core._tcping_iter(
        args.target, count=args.count, interval=args.interval, timeout=args.timeout
    )
    try:
        for seq, host, address, port, state, rtt_ms, error in pings:
            r = socketkit.CheckResult._make((host, address, port, "tcp", state, rtt_ms, error))
            first = first or r
            rtts.append(r.rtt_ms if r.ok else None)
            errors.append(None if r.ok else (r.error or r.state))
            if args.json:
                _emit({"seq": seq, **r.to_dict()})
            elif r.ok:
                print(f"connected to {r.address}:{r.port}: seq={seq} time={r.rtt_ms:.3f} ms")
            else:
                print(f"no connection to {_target_text(r)}: seq={seq} {r.state} {r.error or ''}".rstrip())
    except KeyboardInterrupt:
        if not rtts:
            raise
    finally:
        pings.close()
    assert first is not None
    stats = socketkit.PingStats(first.host, first.address or "", first.port, rtts, errors)
    if args.json:
        _emit({"summary": stats.to_dict()})
    else:
        print(f"--- {args.target} tcping statistics ---")
        print(f"{stats.sent} probes sent, {stats.received} successful, {stats.loss_percent:.1f}% loss")
        if stats.received:
            stdev = stats.stdev if stats.stdev is not None else 0.0
            print(f"rtt min/avg/max/stdev = {stats.min:.3f}/{stats.avg:.3f}/{stats.max:.3f}/{stdev:.3f} ms")
    return EXIT_OK if stats.received == stats.sent else EXIT_DOWN


# --- wait ------------------------------------------------------------------


def cmd_wait(args: argparse.Namespace) -> int:
    expect = _decode_data(args.expect) if args.expect is not None else None
    send = _decode_data(args.send) if args.send is not None else None
    try:
        waited = socketkit.wait_for(
            args.targets, timeout=args.timeout, interval=args.interval, send=send, expect=expect
        )
    except socketkit.TimeoutError as e:
        if args.json:
            _emit({"targets": args.targets, "waited_s": args.timeout, "ok": False, "error": str(e)})
        print(f"socketkit wait: {e}", file=sys.stderr)
        return EXIT_TIMEOUT
    if args.json:
        _emit({"targets": args.targets, "waited_s": round(waited, 3), "ok": True})
    elif not args.quiet:
        print(f"socketkit wait: {', '.join(args.targets)} up after {waited:.2f} s", file=sys.stderr)
    if args.command:
        sys.stdout.flush()
        try:
            return subprocess.call(args.command)
        except OSError as e:
            print(f"socketkit wait: cannot run {args.command[0]!r}: {e.strerror}", file=sys.stderr)
            return 127
    return EXIT_OK


# --- serve -----------------------------------------------------------------


def _discard_tcp(conn: Any) -> None:
    while conn.recv(65536):
        pass


def _discard_udp(data: bytes, peer: tuple[str, int]) -> None:
    return None


def _stop_on_sigterm() -> None:
    """A foreground server stops as cleanly on SIGTERM (kill, systemd,
    containers) as on Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def cmd_serve(args: argparse.Namespace) -> int:
    _stop_on_sigterm()
    address = args.address
    server: socketkit.TcpServer | socketkit.UdpServer
    if args.udp:
        server = (
            socketkit.UdpServer.echo(address)
            if args.mode == "echo"
            else socketkit.UdpServer(address, _discard_udp)
        )
    else:
        server = (
            socketkit.TcpServer.echo(address)
            if args.mode == "echo"
            else socketkit.TcpServer(address, _discard_tcp)
        )
    proto = "udp" if args.udp else "tcp"
    with server:
        host, port = server.address
        where = fmt_target(host, port)
        if args.json:
            _emit({"listening": where, "proto": proto, "mode": args.mode})
        else:
            print(f"socketkit serve: {args.mode} on {proto} {where} (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    if not args.json:
        print("socketkit serve: stopped", file=sys.stderr)
    return EXIT_OK


# --- send ------------------------------------------------------------------


def cmd_send(args: argparse.Namespace) -> int:
    if args.data is None or args.data == "-":
        data = sys.stdin.buffer.read()
    else:
        data = _decode_data(args.data)
    until = _decode_data(args.until) if args.until is not None else None
    t0 = time.perf_counter()
    if args.udp:
        with socketkit.UdpClient(args.target, timeout=args.timeout) as u:
            reply = u.request(data, timeout=args.timeout, retries=args.retries)
    else:
        with socketkit.TcpClient(args.target, timeout=args.timeout) as c:
            c.sendall(data)
            if until is not None:
                reply = c.recv_until(until, max_size=args.max_size)
            else:
                # nc's one-shot: say we are done, read until the peer closes.
                c.shutdown("write")
                chunks = []
                size = 0
                while chunk := c.recv():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > args.max_size:
                        raise socketkit.LimitExceededError(f"reply exceeds --max-size {args.max_size} bytes")
                reply = b"".join(chunks)
    rtt_ms = (time.perf_counter() - t0) * 1000
    if args.json:
        _emit(
            {
                "target": args.target,
                "proto": "udp" if args.udp else "tcp",
                "sent": len(data),
                "reply": fmt_bytes(reply),
                "rtt_ms": round(rtt_ms, 3),
            }
        )
    else:
        sys.stdout.buffer.write(reply)
        sys.stdout.flush()
    return EXIT_OK


# --- listen ----------------------------------------------------------------


def _print_chunk(args: argparse.Namespace, peer: tuple[str, int], data: bytes) -> None:
    if args.json:
        _emit({"peer": fmt_target(peer[0], peer[1]), "data": fmt_bytes(data)})
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def cmd_listen(args: argparse.Namespace) -> int:
    try:
        return _listen(args)
    except KeyboardInterrupt:
        return EXIT_OK


def _listen(args: argparse.Namespace) -> int:
    if args.udp:
        with socketkit.UdpSocket(args.address) as u:
            host, port = u.local_address or ("?", 0)
            print(f"socketkit listen: udp {fmt_target(host, port)}", file=sys.stderr, flush=True)
            while True:
                data, peer = u.recvfrom()
                _print_chunk(args, peer, data)
    with socketkit.TcpServer(args.address) as srv:
        print(f"socketkit listen: tcp {fmt_target(*srv.address)}", file=sys.stderr, flush=True)
        while True:
            conn, peer = srv.accept()
            with conn:
                while chunk := conn.recv():
                    _print_chunk(args, peer, chunk)
            if not args.keep:
                return EXIT_OK


# --- parser ----------------------------------------------------------------

EXAMPLES = {
    "check": "example: socketkit check 127.0.0.1:22 localhost:6379 --timeout 0.5",
    "scan": "examples: socketkit scan 127.0.0.1 -p 22,80,8000-8100 --open\n"
    "          socketkit scan 10.0.0.0/30 -p- --rate 500 --json",
    "ping": "example: socketkit ping localhost:6379 -c 5 -i 0.2",
    "wait": "example: socketkit wait db:5432 cache:6379 --timeout 60 -- ./migrate.sh",
    "serve": "examples: socketkit serve echo 127.0.0.1:7000\n          socketkit serve discard --udp",
    "send": "examples: socketkit send localhost:6379 'PING\\r\\n' --until '\\r\\n'\n"
    "          echo hello | socketkit send 127.0.0.1:7000 --udp",
    "listen": "examples: socketkit listen 127.0.0.1:9000\n          socketkit listen 127.0.0.1:9000 --udp --json",
}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="socketkit",
        description="TCP/UDP probes, test servers and one-shot clients (nc, nmap -sT, tcping, wait-for-it).",
        epilog="Run 'socketkit COMMAND --help' for each command's options and an example.",
    )
    p.add_argument("--version", action="version", version=f"socketkit {socketkit.__version__}")
    sub = p.add_subparsers(dest="command_name", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.add_argument(
            "--json", action="store_true", help="machine-readable output (see 'socketkit --help')"
        )
        return sp

    sp = add("check", "Is each HOST:PORT open? Exit 0 only if all are.")
    sp.add_argument("targets", nargs="+", metavar="HOST:PORT")
    sp.add_argument(
        "--timeout", type=float, default=_D["check_timeout"], help="seconds per connect (default %(default)s)"
    )
    sp.add_argument(
        "--concurrency",
        type=int,
        default=_D["check_concurrency"],
        help="connects at once (default %(default)s)",
    )
    sp.set_defaults(func=cmd_check)

    sp = add("scan", "TCP connect scan of hosts (names, IPs, CIDR) and ports. Exit 0 if any port is open.")
    sp.add_argument("hosts", nargs="+", metavar="HOSTS")
    sp.add_argument(
        "-p",
        "--ports",
        default=_D["scan_ports"],
        help="ports as nmap writes them: 22,80,8000-8100; -p- for all",
    )
    sp.add_argument("--open", action="store_true", help="list only open ports")
    sp.add_argument(
        "--timeout", type=float, default=_D["scan_timeout"], help="seconds per connect (default %(default)s)"
    )
    sp.add_argument(
        "--concurrency",
        type=int,
        default=_D["scan_concurrency"],
        help="connects at once (default %(default)s)",
    )
    sp.add_argument("--rate", type=float, default=None, help="new connections per second at most")
    sp.set_defaults(func=cmd_scan, all_ports=False)

    sp = add("ping", "Time TCP handshakes to HOST:PORT, like ping. Exit 0 if every probe connected.")
    sp.add_argument("target", metavar="HOST:PORT")
    sp.add_argument(
        "-c", "--count", type=int, default=_D["ping_count"], help="probes to send (default %(default)s)"
    )
    sp.add_argument(
        "-i",
        "--interval",
        type=float,
        default=_D["ping_interval"],
        help="seconds between probes (default %(default)s)",
    )
    sp.add_argument(
        "--timeout", type=float, default=_D["ping_timeout"], help="seconds per probe (default %(default)s)"
    )
    sp.set_defaults(func=cmd_ping)

    sp = add("wait", "Wait until every HOST:PORT accepts connections, then run CMD (wait-for-it).")
    sp.add_argument("targets", nargs="+", metavar="HOST:PORT")
    sp.add_argument(
        "--timeout", type=float, default=_D["wait_timeout"], help="give up after this many seconds (exit 124)"
    )
    sp.add_argument(
        "--interval", type=float, default=_D["wait_interval"], help="first retry delay in seconds (backs off)"
    )
    sp.add_argument("--send", default=None, help="bytes to send once connected (backslash escapes)")
    sp.add_argument("--expect", default=None, help="bytes the reply must contain to count as up")
    sp.add_argument("-q", "--quiet", action="store_true", help="say nothing on success")
    sp.set_defaults(func=cmd_wait, command=[])

    sp = add("serve", "Run a test server in the foreground until Ctrl-C.")
    sp.add_argument("mode", choices=["echo", "discard"])
    sp.add_argument("address", nargs="?", default="127.0.0.1:0", metavar="ADDR", help="default 127.0.0.1:0")
    sp.add_argument("--udp", action="store_true")
    sp.set_defaults(func=cmd_serve)

    sp = add("send", "Send DATA (or stdin) to HOST:PORT and print the reply (nc one-shot).")
    sp.add_argument("target", metavar="HOST:PORT")
    sp.add_argument(
        "data", nargs="?", metavar="DATA|-", help="bytes with backslash escapes; - or absent: stdin"
    )
    sp.add_argument("--udp", action="store_true")
    sp.add_argument("--until", default=None, metavar="DELIM", help="TCP: read the reply up to DELIM, not EOF")
    sp.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    sp.add_argument(
        "--retries", type=int, default=_D["udp_retries"], help="UDP: resends on silence (default %(default)s)"
    )
    sp.add_argument("--max-size", type=int, default=16 << 20, help="largest reply in bytes (default 16 MiB)")
    sp.set_defaults(func=cmd_send)

    sp = add("listen", "Print what arrives on ADDR (nc -l).")
    sp.add_argument("address", metavar="ADDR")
    sp.add_argument("--udp", action="store_true")
    sp.add_argument(
        "-k", "--keep", action="store_true", help="TCP: keep accepting after the first connection"
    )
    sp.set_defaults(func=cmd_listen)
    return p


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """`wait A B -- cmd args`: what follows `--` is the command to run."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    own, command = _split_command(raw)
    # nmap's `-p-` (all ports) is not something argparse can read.
    all_ports = "-p-" in own
    own = [a for a in own if a != "-p-"]
    parser = build_parser()
    args = parser.parse_args(own)
    if command and args.command_name != "wait":
        parser.error("'-- CMD' is only for 'wait'")
    args.command = command
    if all_ports:
        if args.command_name != "scan":
            parser.error("-p- is only for 'scan'")
        args.all_ports = True
    prog = f"socketkit {args.command_name}"
    try:
        return int(args.func(args))
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except socketkit.TimeoutError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return EXIT_DOWN
    except OSError as e:
        print(f"{prog}: {e.strerror or e}", file=sys.stderr)
        return EXIT_DOWN
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
