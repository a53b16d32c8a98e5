"""_probe_core._tcping_iter: tcping one ping at a time (what the CLI's ping
drives), and tcping() built on the same core stream."""

from __future__ import annotations

import threading
import time

import pytest
from _probe_util import closed_port, full_backlog, listeners
from test_probe_scan import _interrupt_child

import socketkit
from socketkit import _core, _probe_core


def test_pings_are_numbered_tuples_started_an_interval_apart():
    with listeners(1) as (port,):
        start = time.monotonic()
        got = list(_probe_core._tcping_iter("127.0.0.1", port, count=3, interval=0.1, timeout=1.0))
        took = time.monotonic() - start
    assert [p[0] for p in got] == [1, 2, 3]
    for _seq, host, address, p, state, rtt_ms, error in got:
        assert (host, address, p, state, error) == ("127.0.0.1", "127.0.0.1", port, "open", None)
        assert rtt_ms is not None and rtt_ms > 0
    # Start to start: two intervals, not two intervals plus the pings.
    assert 0.18 <= took < 1.0


def test_a_closed_port_reads_like_check():
    port = closed_port()
    (ping,) = list(_probe_core._tcping_iter(f"127.0.0.1:{port}", count=1, interval=0.0))
    c = socketkit.check("127.0.0.1", port)
    assert ping[1:] == (c.host, c.address, c.port, c.state, ping[5], c.error)
    assert ping[4] == "closed"


def test_a_name_that_does_not_resolve_is_an_error_result_each_ping():
    got = list(_probe_core._tcping_iter("no-such-host.invalid", 80, count=2, interval=0.0, timeout=0.5))
    assert [(p[0], p[2], p[4]) for p in got] == [(1, None, "error"), (2, None, "error")]
    assert all(p[6] for p in got)
    with pytest.raises(OSError):
        socketkit.tcping("no-such-host.invalid", 80, count=1, timeout=0.5)


def test_close_from_another_thread_ends_a_waiting_iterator():
    with listeners(1) as (port,):
        it = _probe_core._tcping_iter("127.0.0.1", port, count=5, interval=30.0)
        assert next(it)[4] == "open"
        timer = threading.Timer(0.2, it.close)
        timer.start()
        start = time.monotonic()
        try:
            assert list(it) == []
        finally:
            timer.join()
        assert time.monotonic() - start < 5


def test_the_gil_is_released_while_a_ping_waits():
    count = 0
    stop = threading.Event()

    def spin():
        nonlocal count
        while not stop.is_set():
            count += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        with full_backlog() as port:
            (ping,) = list(_probe_core._tcping_iter("127.0.0.1", port, count=1, interval=0.0, timeout=0.5))
    finally:
        stop.set()
        t.join()
    assert ping[4] == "filtered"
    assert count > 10_000


def test_ctrl_c_during_tcping_iter():
    _interrupt_child('list(socketkit._probe_core._tcping_iter("127.0.0.1", port, count=100, timeout=30))')


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [({"count": 0}, "count"), ({"interval": -1.0}, "interval"), ({"timeout": -1.0}, "timeout")],
)
def test_bad_arguments_name_the_argument(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        _probe_core._tcping_iter("127.0.0.1", 1, **kwargs)


def test_defaults_come_from_the_core():
    import inspect

    params = inspect.signature(_probe_core._tcping_iter).parameters
    d = _core.DEFAULTS
    assert (params["count"].default, params["interval"].default, params["timeout"].default) == (
        d["ping_count"],
        d["ping_interval"],
        d["ping_timeout"],
    )
