"""``socketkit check``, ``scan``, ``ping`` and ``wait``: the probe
subcommands (parsing and dispatch are in ``cli``)."""

from __future__ import annotations

import argparse
import ipaddress
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import socketkit
from socketkit import _cli_nagios as nagios
from socketkit._cli_common import (
    EXIT_DOWN,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    UsageError,
    decode_data,
    emit,
    error_text,
    progress,
)
from socketkit._cli_service import address_kwargs, check_kwargs, print_step_failures
from socketkit._format import fmt_counts, fmt_target, plural, result_table
from socketkit.results import PingProbe

#: The largest UDP job the CLI runs: every probe may wait out its timeout.
MAX_UDP_PROBES = 65536


# --- check -----------------------------------------------------------------


def _udp_many(
    targets: Iterable[socketkit.probes.Target], timeout: float, concurrency: int, **kw: object
) -> socketkit.Results:
    """UDP probes at once, in input order (``udp_probe`` releases the GIL)."""
    targets = list(targets)
    if len(targets) > MAX_UDP_PROBES:
        raise ValueError(f"a UDP run probes at most {MAX_UDP_PROBES} ports, got {len(targets)}")
    if not targets:
        return socketkit.Results()
    workers = max(1, min(concurrency, 256, len(targets)))
    with ThreadPoolExecutor(workers, thread_name_prefix="socketkit-udp") as pool:
        return socketkit.Results(
            pool.map(lambda t: socketkit.check(t, timeout=timeout, proto="udp", **kw), targets)  # type: ignore[arg-type]
        )


def cmd_check(args: argparse.Namespace) -> int:
    service = check_kwargs(args)
    if args.udp:
        results = _udp_many(args.targets, args.timeout, args.concurrency, **address_kwargs(args))
    else:
        bar = None if args.nagios else progress(args)
        results = socketkit.check_many(
            args.targets,
            timeout=args.timeout,
            concurrency=args.concurrency,
            progress=bar,
            **address_kwargs(args),
            **service,
        )
    if args.nagios:
        return nagios.check_status(args, results)
    if args.json:
        emit(results.to_dicts())
    else:
        print(result_table(results, ("target", "address", "proto", "state", "rtt", "error")))
    print_step_failures("socketkit check", results, service)
    return EXIT_OK if all(r.ok for r in results) else EXIT_DOWN


# --- scan ------------------------------------------------------------------


def _hosts(specs: list[str]) -> list[str]:
    """Scan host specs as the core reads them (commas or spaces separate;
    a CIDR block is every address in it), for the UDP scan."""
    out: list[str] = []
    for spec in specs:
        for item in spec.replace(",", " ").split():
            if "/" in item:
                try:
                    net = ipaddress.ip_network(item, strict=False)
                except ValueError as e:
                    raise ValueError(f"hosts: {e}") from None
                if net.num_addresses > MAX_UDP_PROBES:
                    raise ValueError(f"hosts: {item} has more than {MAX_UDP_PROBES} addresses")
                out += [str(a) for a in net]
            else:
                out.append(item)
    return out


def _udp_scan(args: argparse.Namespace, ports: str) -> socketkit.ScanReport:
    port_list = socketkit._probe_core._parse_ports(ports)
    hosts = _hosts(args.hosts)
    start = time.perf_counter()
    results = _udp_many(
        [(h, p) for h in hosts for p in port_list], args.timeout, args.concurrency, **address_kwargs(args)
    )
    return socketkit.ScanReport(results, ports=len(port_list), elapsed=time.perf_counter() - start)


def cmd_scan(args: argparse.Namespace) -> int:
    ports = "1-65535" if args.all_ports else args.ports
    if args.udp:
        report = _udp_scan(args, ports)
    else:
        report = socketkit.scan(
            args.hosts,
            ports,
            timeout=args.timeout,
            concurrency=args.concurrency,
            rate=args.rate,
            progress=progress(args),
            **address_kwargs(args),
        )
    if args.json:
        shown = [r for r in report if r.ok] if args.open else list(report)
        doc = report.to_dict()
        doc["results"] = [r.to_dict() for r in shown]
        emit(doc)
        return EXIT_OK if any(r.ok for r in report) else EXIT_DOWN
    # nmap's way: the ports worth reading, and a count of the closed ones.
    if args.open:
        shown = [r for r in report if r.ok]
    elif args.show_all:
        shown = list(report)
    else:
        shown = [r for r in report if r.state != "closed"]
    if shown:
        print(result_table(shown, ("host", "address", "port", "proto", "state", "rtt")))
    hidden = len(report) - len(shown)
    closed = report.counts.get("closed", 0)
    if hidden and not args.open and closed:
        print(f"Not shown: {plural(closed, 'closed port')} (--all lists them)")
    print(
        f"scanned {len(report.hosts)} host(s), {len(report)} port(s) in {report.elapsed:.2f} s: "
        + fmt_counts(report.counts)
    )
    return EXIT_OK if any(r.ok for r in report) else EXIT_DOWN


# --- ping ------------------------------------------------------------------


def _stamp(args: argparse.Namespace, t: float) -> str:
    """ping -D's prefix: the Unix time the probe started."""
    return f"[{t:.6f}] " if args.timestamps else ""


def _ping_line(args: argparse.Namespace, host: str, port: int, p: PingProbe) -> None:
    if args.json:
        r = socketkit.CheckResult(host, p.address, port, "tcp", p.state, p.rtt_ms, p.error)
        emit({"seq": p.seq, "time": p.time, **r.to_dict()})
    elif p.ok:
        print(f"{_stamp(args, p.time)}connected to {p.address}:{port}: seq={p.seq} time={p.rtt_ms:.3f} ms")
    else:
        where = fmt_target(host, port)
        print(
            f"{_stamp(args, p.time)}no connection to {where}: seq={p.seq} {p.state} {p.error or ''}".rstrip()
        )
    sys.stdout.flush()


def _fmt_streak(s: tuple[float, float, float] | None) -> str:
    if s is None:
        return "none"
    start = time.strftime("%H:%M:%S", time.localtime(s[0]))
    end = time.strftime("%H:%M:%S", time.localtime(s[1]))
    return f"{s[2]:.1f} s ({start} to {end})"


def ping_summary(args: argparse.Namespace, stats: socketkit.PingStats) -> None:
    """ping(8)'s closing lines, statistics kept even at 100% loss."""
    if args.json:
        emit({"summary": stats.to_dict()})
        return
    print(f"--- {args.target} tcping statistics ---")
    print(f"{stats.sent} probes sent, {stats.received} successful, {stats.loss_percent:.1f}% loss")
    if stats.received:
        stdev = stats.stdev if stats.stdev is not None else 0.0
        print(f"rtt min/avg/max/stdev = {stats.min:.3f}/{stats.avg:.3f}/{stats.max:.3f}/{stdev:.3f} ms")
    if stats.probes and (args.count is None or stats.received != stats.sent):
        print(f"uptime {stats.uptime_s:.1f} s, downtime {stats.downtime_s:.1f} s")
        print(f"longest up {_fmt_streak(stats.longest_up)}, longest down {_fmt_streak(stats.longest_down)}")
    for t, old, new in stats.address_changes:
        print(f"address changed {old} -> {new} at {time.strftime('%H:%M:%S', time.localtime(t))}")


def run_pings(args: argparse.Namespace) -> tuple[socketkit.PingStats, bool]:
    """Ping as the options say, printing each probe; the statistics, and
    whether Ctrl-C ended a run that had a count (ping(8)'s exit 130)."""
    # One ping every interval, start to start, as tcping() does. Made before
    # the header, so a bad target is a usage error with nothing printed.
    pings = socketkit._probe_core._tcping_stream(
        args.target,
        count=args.count,
        interval=args.interval,
        timeout=args.timeout,
        deadline=args.deadline,
        resolve_every=args.resolve_every,
        strict=False,
        **address_kwargs(args),
    )
    quiet = getattr(args, "nagios", False)
    if not (quiet or args.json):
        what = f"{args.count} probe(s)" if args.count else "until Ctrl-C"
        if args.deadline is not None:
            what += f" or {args.deadline:g} s"
        print(f"TCPING {args.target}: {what}, timeout {args.timeout} s", flush=True)
    probes: list[PingProbe] = []
    host, port = args.target, 0
    interrupted = False
    try:
        for seq, t, host, address, port, state, rtt_ms, error in pings:
            p = PingProbe(seq, t, state, address, rtt_ms, error)  # type: ignore[arg-type]
            probes.append(p)
            if not quiet and not (args.failures_only and p.ok):
                _ping_line(args, host, port, p)
    except KeyboardInterrupt:
        # ping(8)'s way: the summary of what was sent, then the status.
        if not probes:
            raise
        interrupted = args.count is not None
    finally:
        pings.close()
    return socketkit.ping_probes.ping_stats(host, port, probes, time.time()), interrupted


def cmd_ping(args: argparse.Namespace) -> int:
    if args.nagios and args.count is None and args.deadline is None:
        args.count = socketkit._core.DEFAULTS["ping_count"]  # a plugin run must end
    stats, interrupted = run_pings(args)
    if args.nagios:
        if interrupted:
            raise KeyboardInterrupt
        return nagios.ping_status(args, stats)
    ping_summary(args, stats)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if stats.received == stats.sent else EXIT_DOWN


# --- wait ------------------------------------------------------------------


def cmd_wait(args: argparse.Namespace) -> int:
    expect = decode_data(args.expect) if args.expect is not None else None
    send = decode_data(args.send) if args.send is not None else None
    say = not (args.quiet or args.json)
    for i, t in enumerate(args.targets):
        try:
            socketkit._probe_core._parse_target(t)
        except ValueError as e:
            raise ValueError(f"targets[{i}]: {str(e).removeprefix('target: ')}") from None
    state = args.state
    if state != "open" and (send is not None or expect is not None):
        raise UsageError("--send and --expect are for --state open only")
    if args.connect_timeout == 0:
        raise UsageError("--connect-timeout must be more than 0")
    ignore = [s for s in args.drain_ignore.split(",") if s.strip()]
    goal = {"open": "", "closed": " to close", "drained": " to drain"}[state]
    if say:
        # wait-for-it's way: say what is being waited for, and how long at most.
        print(
            f"socketkit wait: waiting up to {args.timeout:g} s for {', '.join(args.targets)}{goal}",
            file=sys.stderr,
            flush=True,
        )
    try:
        waited = socketkit.wait_for(
            args.targets,
            timeout=args.timeout,
            interval=args.interval,
            send=send,
            expect=expect,
            state=state,
            delay=args.delay,
            connect_timeout=args.connect_timeout,
            drain_ignore=ignore,
            **address_kwargs(args),
        )
    except socketkit.TimeoutError as e:
        if args.json:
            emit({"targets": args.targets, "waited_s": args.timeout, "ok": False, "error": error_text(e)})
        if not args.quiet:
            print(f"socketkit wait: {error_text(e)}", file=sys.stderr)
        return EXIT_TIMEOUT
    if args.json:
        emit({"targets": args.targets, "waited_s": round(waited, 3), "ok": True})
    elif say:
        done = {"open": "up", "closed": "closed", "drained": "drained"}[state]
        print(f"socketkit wait: {', '.join(args.targets)} {done} after {waited:.2f} s", file=sys.stderr)
    if args.command:
        sys.stdout.flush()
        try:
            return subprocess.call(args.command)
        except OSError as e:
            print(f"socketkit wait: cannot run {args.command[0]!r}: {e.strerror}", file=sys.stderr)
            return 127
    return EXIT_OK
