"""Ctrl-C and the GIL (DESIGN.md section 5): every blocking call releases
the GIL and raises KeyboardInterrupt promptly on SIGINT."""

from __future__ import annotations

import socket
import textwrap
import threading
import time

import pytest
from _child import can_make_netns, interrupt, netns, start

import socketkit

# A child that blocks in `BLOCK`, after printing READY; it reports how it ended.
CHILD = """
import socket, sys, time, threading, socketkit
{setup}
print("READY", flush=True)
t0 = time.monotonic()
try:
    {block}
except KeyboardInterrupt:
    print("INTERRUPTED", round(time.monotonic() - t0, 3), flush=True)
    sys.exit(0)
print("RETURNED", flush=True)
"""

TCP_SETUP = """
srv = socket.create_server(("127.0.0.1", 0))
c = socketkit.TcpClient(srv.getsockname())
peer, _ = srv.accept()
"""

UDP_SETUP = """
u = socketkit.UdpSocket(("127.0.0.1", 0))
"""

# A listener whose accept queue is full: Linux drops further SYNs, so a
# connect to it waits (SYN retransmits) until interrupted.
FULL_BACKLOG_SETUP = """
lst = socket.socket()
lst.bind(("127.0.0.1", 0))
lst.listen(0)
fillers = []
for _ in range(2):
    f = socket.socket()
    f.setblocking(False)
    try:
        f.connect(lst.getsockname())
    except BlockingIOError:
        pass
    fillers.append(f)
time.sleep(0.05)
"""

CASES = {
    "connect": (FULL_BACKLOG_SETUP, "socketkit.TcpClient(lst.getsockname())"),
    "recv": (TCP_SETUP, "c.recv()"),
    "recv_exact": (TCP_SETUP, "c.recv_exact(10)"),
    "recv_line": (TCP_SETUP, "c.recv_line()"),
    "lines": (TCP_SETUP, "list(c.lines())"),
    "request": (TCP_SETUP, "c.request(b'ping\\n')"),
    # A full send buffer: the peer never reads.
    "sendall": (TCP_SETUP, "c.sendall(b'x' * (256 << 20))"),
    "recv_into": (TCP_SETUP, "c.recv_into(bytearray(10))"),
    "udp_recvfrom": (UDP_SETUP, "u.recvfrom()"),
    "udp_request": (UDP_SETUP, "u.request(b'x', ('127.0.0.1', 9), timeout=60, retries=5)"),
}


def _child(setup: str, block: str) -> str:
    return CHILD.format(setup=textwrap.dedent(setup), block=block)


def _assert_interrupted(outcome) -> None:
    assert outcome.seconds_to_exit < 2.0, outcome
    assert "INTERRUPTED" in outcome.stdout, outcome
    assert outcome.returncode == 0, outcome
    # The wait itself answered: the report says how long the child was blocked.
    assert "Traceback" not in outcome.stderr, outcome.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_sigint_interrupts_blocking_call(case: str) -> None:
    setup, block = CASES[case]
    proc = start(_child(setup, block))
    _assert_interrupted(interrupt(proc))


def test_sigint_delivered_to_another_thread_still_interrupts() -> None:
    # The kernel may deliver SIGINT to any thread; the main thread, blocked
    # in recv, must still notice within a wait slice.
    setup = TCP_SETUP + textwrap.dedent(
        """
        import signal
        main = threading.get_ident()
        ready = threading.Event()
        def other():
            ready.wait()
            time.sleep(0.3)
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        th = threading.Thread(target=other, daemon=True)
        th.start()
        ready.set()
        """
    )
    proc = start(_child(setup, "c.recv()"))
    out, err = proc.communicate(timeout=10)
    assert "INTERRUPTED" in out, (out, err)
    blocked = float(out.split()[-1])
    # 0.3 s until the other thread gets the signal, then at most one slice.
    assert blocked < 2.0, out


@pytest.mark.skipif(not can_make_netns(), reason="needs root and iproute2 for a network namespace")
def test_sigint_interrupts_name_resolution() -> None:
    # A resolver that never answers: the connect waits in resolution.
    silent_dns = "nameserver 127.0.0.1\noptions timeout:5 attempts:2\n"
    setup = """
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))
    """
    with netns(resolv=silent_dns) as prefix:
        proc = start(_child(setup, "socketkit.TcpClient(('service.example.test', 80))"), prefix)
        _assert_interrupted(interrupt(proc))


def test_gil_released_while_blocked_in_recv() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    with srv, socketkit.TcpClient(srv.getsockname(), timeout=1.0) as c:
        peer, _ = srv.accept()
        with peer:
            count = 0
            stop = threading.Event()

            def counter() -> None:
                nonlocal count
                while not stop.is_set():
                    count += 1

            th = threading.Thread(target=counter)
            th.start()
            try:
                t0 = time.monotonic()
                with pytest.raises(socketkit.TimeoutError):
                    c.recv()
                blocked = time.monotonic() - t0
            finally:
                stop.set()
                th.join()
    assert blocked >= 0.9
    # Holding the GIL for a second would have left the counter near zero.
    assert count > 10_000, count


def test_close_from_another_thread_wakes_recv() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    with srv, socketkit.TcpClient(srv.getsockname()) as c:
        peer, _ = srv.accept()
        with peer:
            errors: list[BaseException] = []
            results: list[bytes] = []

            def reader() -> None:
                try:
                    results.append(c.recv())
                except OSError as e:
                    errors.append(e)

            th = threading.Thread(target=reader)
            th.start()
            time.sleep(0.2)
            c.close()
            th.join(5)
            assert not th.is_alive()
            # Woken by the shutdown: EOF or an error, never a hang.
            assert results == [b""] or errors, (results, errors)
            assert c.closed
            assert c.fileno() == -1
