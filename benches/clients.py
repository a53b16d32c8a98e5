"""Client-side benchmarks: socketkit against the stdlib, asyncio and iperf3
in one run (issue 6 items 1-4). Run through `python benches/run.py`, or
alone: `python benches/clients.py [--quick]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import subprocess
import threading
import time

from common import Row, ensure_tool, interleaved, median_of, native_echo, table

import socketkit

CHUNK = 1 << 20


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    srv = socket.create_server(("127.0.0.1", 0))
    with srv:
        a = socket.create_connection(srv.getsockname())
        b, _ = srv.accept()
    return a, b


def _bulk(total: int, send: object, recv_into: object) -> float:
    """GiB/s moving `total` bytes from send(chunk) to recv_into(buf)."""
    payload = memoryview(bytearray(CHUNK))

    def sender() -> None:
        left = total
        while left > 0:
            n = min(left, CHUNK)
            send(payload[:n])  # type: ignore[operator]
            left -= n

    buf = bytearray(CHUNK)
    th = threading.Thread(target=sender)
    t0 = time.perf_counter()
    th.start()
    got = 0
    while got < total:
        n = recv_into(buf)  # type: ignore[operator]
        if n == 0:
            break
        got += n
    th.join()
    elapsed = time.perf_counter() - t0
    assert got == total, (got, total)
    return total / elapsed / (1 << 30)


def bulk_stdlib(total: int) -> float:
    a, b = _tcp_pair()
    with a, b:
        return _bulk(total, a.sendall, b.recv_into)


def bulk_socketkit(total: int) -> float:
    a, b = _tcp_pair()
    with socketkit.TcpClient.from_socket(a) as ka, socketkit.TcpClient.from_socket(b) as kb:
        return _bulk(total, ka.sendall, kb.recv_into)


def bulk_asyncio(total: int) -> float:
    async def main() -> float:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got = 0
            while data := await reader.read(CHUNK):
                got += len(data)
            done.set_result(got)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = bytes(CHUNK)
        t0 = time.perf_counter()
        left = total
        while left > 0:
            n = min(left, CHUNK)
            writer.write(payload[:n])
            await writer.drain()
            left -= n
        writer.write_eof()
        got = await done
        elapsed = time.perf_counter() - t0
        writer.close()
        server.close()
        await server.wait_closed()
        if got != total:
            raise RuntimeError(f"asyncio bulk: received {got} of {total} bytes")
        return total / elapsed / (1 << 30)

    return asyncio.run(main())


def bulk_iperf3(total: int) -> float | None:
    """iperf3's single-stream figure over loopback: the near-limit."""
    iperf = ensure_tool("iperf3", "iperf3")
    if not iperf:
        return None
    port = _free_port()
    server = subprocess.Popen(
        [iperf, "-s", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):  # until it listens (-1 is not used: this probe would count)
            if f":{port} " in subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout:
                break
            time.sleep(0.05)
        r = subprocess.run(
            [iperf, "-c", "127.0.0.1", "-p", str(port), "-n", str(total), "-J"],
            capture_output=True,
            text=True,
            check=True,
        )
        bps = json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"]
        return bps / 8 / (1 << 30)
    finally:
        server.kill()
        server.wait()


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def rr_stdlib(addr: tuple[str, int], n: int) -> float:
    """Microseconds per 64-byte round trip, stdlib sendall + recv."""
    msg = b"x" * 64
    with socket.create_connection(addr) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        for _ in range(n):
            s.sendall(msg)
            got = s.recv(64)
            while len(got) < 64:
                got += s.recv(64 - len(got))
        return (time.perf_counter() - t0) / n * 1e6


def rr_socketkit(addr: tuple[str, int], n: int) -> float:
    msg = b"x" * 64
    with socketkit.TcpClient(addr, nodelay=True) as c:
        t0 = time.perf_counter()
        for _ in range(n):
            c.request(msg, exact=64)
        return (time.perf_counter() - t0) / n * 1e6


def _udp_rate(n: int, send_all: object, recv_some: object) -> float:
    """Datagrams per second delivered from a sender thread to the receiver."""
    th = threading.Thread(target=send_all)
    t0 = time.perf_counter()
    th.start()
    got = 0
    try:
        while got < n:
            got += recv_some()  # type: ignore[operator]
    except TimeoutError:
        pass  # datagrams lost under overload: count what arrived
    th.join()
    return got / (time.perf_counter() - t0)


def udp_stdlib(n: int) -> float:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.5)
        to = rx.getsockname()
        msg = b"x" * 64

        def send_all() -> None:
            for _ in range(n):
                tx.sendto(msg, to)

        def recv_one() -> int:
            rx.recvfrom(2048)
            return 1

        return _udp_rate(n, send_all, recv_one)


def udp_socketkit(n: int) -> float:
    with (
        socketkit.UdpSocket(("127.0.0.1", 0), timeout=0.5, recv_buffer=1 << 24) as rx,
        socketkit.UdpSocket(timeout=5) as tx,
    ):
        to = rx.local_address
        batch = [(b"x" * 64, to)] * 256

        def send_all() -> None:
            for _ in range(n // 256):
                tx.send_many(batch)

        def recv_batch() -> int:
            return len(rx.recv_many(256, 2048))

        return _udp_rate(n // 256 * 256, send_all, recv_batch)


# Every connect+close variant closes with SO_LINGER 0 (a reset): tens of
# thousands of connections in TIME_WAIT otherwise make later connects stall on
# a 1 s SYN retransmit at random, which swamped the figures.
LINGER_0 = struct.pack("ii", 1, 0)


def connect_stdlib(addr: tuple[str, int], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        s.connect(addr)
        s.close()
    return n / (time.perf_counter() - t0)


def connect_create_connection(addr: tuple[str, int], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        s = socket.create_connection(addr)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        s.close()
    return n / (time.perf_counter() - t0)


def connect_socketkit(addr: tuple[str, int], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        socketkit.TcpClient(addr, linger=0).close()
    return n / (time.perf_counter() - t0)


def run(quick: bool = False) -> list[Row]:
    repeats = 3 if quick else 5
    bulk_total = (256 if quick else 1024) << 20
    rows: list[Row] = []

    r = interleaved(
        repeats,
        {
            "socketkit": lambda: bulk_socketkit(bulk_total),
            "stdlib sendall+recv_into": lambda: bulk_stdlib(bulk_total),
            "asyncio streams": lambda: bulk_asyncio(bulk_total),
        },
    )
    ip = median_of(max(1, repeats // 2), lambda: bulk_iperf3(bulk_total) or 0.0)
    if ip:
        r["iperf3 (1 stream)"] = ip
    sk = r.pop("socketkit")
    rows.append(
        Row(f"bulk TCP {bulk_total >> 20} MiB", "GiB/s", True, sk, r, ">=1.0x stdlib, >=0.75x iperf3")
    )

    n_rr = 5000 if quick else 20000
    with native_echo() as addr:
        r = interleaved(
            repeats,
            {
                "socketkit": lambda: rr_socketkit(addr, n_rr),
                "stdlib sendall+recv": lambda: rr_stdlib(addr, n_rr),
            },
        )
        sk = r.pop("socketkit")
        rows.append(Row("64 B request/response", "us", False, sk, r, "within 10% of stdlib"))

    n_conn = 2000 if quick else 5000
    with native_echo("accept-close") as addr:
        r = interleaved(
            repeats,
            {
                "socketkit": lambda: connect_socketkit(addr, n_conn),
                "stdlib socket()+connect()": lambda: connect_stdlib(addr, n_conn),
                "create_connection": lambda: connect_create_connection(addr, n_conn),
            },
        )
        sk = r.pop("socketkit")
        rows.append(Row("connect+close", "conn/s", True, sk, r, ">=1.0x socket()+connect()"))

    n_udp = 100_000 if quick else 300_000
    r = interleaved(
        repeats,
        {"socketkit": lambda: udp_socketkit(n_udp), "stdlib sendto/recvfrom": lambda: udp_stdlib(n_udp)},
    )
    sk = r.pop("socketkit")
    rows.append(Row("UDP 64 B datagrams", "dgram/s", True, sk, r, ">=2x stdlib"))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    rows = run(ap.parse_args().quick)
    print(table(rows))
