"""``socketkit serve``, ``send`` and ``listen``: test servers and nc's
one-shot client and listener (parsing and dispatch are in ``cli``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from typing import Any

import socketkit
from socketkit._cli_common import EXIT_DOWN, EXIT_INTERRUPTED, EXIT_OK, UsageError, decode_data, emit
from socketkit._format import fmt_bytes, fmt_target

# --- serve -----------------------------------------------------------------


def _discard_tcp(conn: Any) -> None:
    while conn.recv(65536):
        pass


def _discard_udp(data: bytes, peer: tuple[str, int]) -> None:
    return None


class _Terminated(KeyboardInterrupt):
    """SIGTERM: a requested stop (kill, systemd, containers), exit 0."""


def _stop_on_sigterm() -> None:
    """A foreground server stops as cleanly on SIGTERM as on Ctrl-C; the
    subclass tells the two apart for the exit status."""

    def handler(signum: int, frame: object) -> None:
        raise _Terminated

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
    status = EXIT_OK
    try:  # around it all: a signal may land before serve_forever() starts
        with server:
            host, port = server.address
            where = fmt_target(host, port)
            if args.json:
                emit({"listening": where, "proto": proto, "mode": args.mode})
            else:
                print(f"socketkit serve: {args.mode} on {proto} {where} (Ctrl-C stops)", flush=True)
            server.serve_forever()
    except _Terminated:
        pass
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    if not args.json:
        print("socketkit serve: stopped", file=sys.stderr)
    return status


# --- exporter --------------------------------------------------------------


def cmd_exporter(args: argparse.Namespace) -> int:
    try:
        from socketkit import exporter
    except ImportError as e:
        print(f"socketkit exporter: {e}", file=sys.stderr)
        return EXIT_DOWN
    if args.log_level:
        logging.basicConfig(level=args.log_level.upper(), format="socketkit exporter: %(message)s")

    def ready(exp: exporter.Exporter) -> None:
        where = fmt_target(*exp.address)
        modules = sorted(exp.config.modules)
        if args.json:
            emit({"listening": where, "config": exp.config.source, "modules": modules})
        else:
            print(f"socketkit exporter: listening on http://{where}/ ({len(modules)} modules)", flush=True)

    workers = exporter.default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    try:
        exporter.serve(args.config, args.listen, on_ready=ready, workers=workers)
    except exporter.ConfigError as e:
        raise UsageError(f"config: {e}") from None
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


# --- send ------------------------------------------------------------------


def _read_to_eof(c: socketkit.TcpClient, max_size: int) -> bytes:
    # nc's one-shot: say we are done, read until the peer closes.
    c.shutdown("write")
    chunks = []
    size = 0
    while chunk := c.recv():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_size:
            raise socketkit.LimitExceededError(f"reply exceeds --max-size {max_size} bytes")
    return b"".join(chunks)


def cmd_send(args: argparse.Namespace) -> int:
    if args.data is None or args.data == "-":
        data = sys.stdin.buffer.read()
    else:
        data = decode_data(args.data)
    until = decode_data(args.until) if args.until is not None else None
    reply: bytes | None = None
    t0 = time.perf_counter()
    if args.udp:
        with socketkit.UdpClient(args.target, timeout=args.timeout) as u:
            if args.no_reply:
                u.send(data)  # fire and forget, as statsd and syslog senders do
            else:
                reply = u.request(data, timeout=args.timeout, retries=args.retries)
    else:
        with socketkit.TcpClient(args.target, timeout=args.timeout) as c:
            c.sendall(data)
            if args.no_reply:
                pass
            elif until is not None:
                reply = c.recv_until(until, max_size=args.max_size)
            else:
                reply = _read_to_eof(c, args.max_size)
    rtt_ms = (time.perf_counter() - t0) * 1000
    if args.json:
        emit(
            {
                "target": args.target,
                "proto": "udp" if args.udp else "tcp",
                "sent": len(data),
                "reply": None if reply is None else fmt_bytes(reply),
                "rtt_ms": round(rtt_ms, 3),
            }
        )
    elif reply is not None:
        sys.stdout.buffer.write(reply)
        sys.stdout.flush()
    return EXIT_OK


# --- listen ----------------------------------------------------------------


def _print_chunk(args: argparse.Namespace, peer: tuple[str, int], data: bytes) -> None:
    if args.json:
        emit({"peer": fmt_target(peer[0], peer[1]), "data": fmt_bytes(data)})
        return
    if args.udp and not data.endswith(b"\n"):
        # One datagram, one line: statsd-style datagrams carry no newline.
        data += b"\n"
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def cmd_listen(args: argparse.Namespace) -> int:
    try:
        return _listen(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


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
