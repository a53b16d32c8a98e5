"""check, check_many, check_iter and the result types."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from _probe_util import closed_port, full_backlog, has_ipv6, listeners

import socketkit
from socketkit import CheckResult, Results

HERE = Path(__file__).parent


def test_check_open_port():
    with listeners(1) as (port,):
        r = socketkit.check("127.0.0.1", port)
    assert isinstance(r, CheckResult)
    assert (r.host, r.address, r.port, r.proto) == ("127.0.0.1", "127.0.0.1", port, "tcp")
    assert r.state == "open"
    assert r.ok is True
    assert r.rtt_ms is not None and r.rtt_ms > 0
    assert r.error is None


def test_check_closed_port():
    port = closed_port()
    r = socketkit.check(f"127.0.0.1:{port}")
    assert r.state == "closed"
    assert r.ok is False
    assert r.address == "127.0.0.1"


def test_check_resolves_names_and_takes_every_target_form():
    with listeners(1) as (port,):
        by_name = socketkit.check(f"localhost:{port}")
        by_tuple = socketkit.check(("localhost", port))
        by_port = socketkit.check("localhost", port=port)
    for r in (by_name, by_tuple, by_port):
        assert r.host == "localhost"
        assert r.state == "open"
        assert r.address == "127.0.0.1"  # the address that answered


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")
def test_check_ipv6_loopback():
    with listeners(1, host="::1") as (port,):
        for target in (f"[::1]:{port}", ("::1", port)):
            r = socketkit.check(target)
            assert r.state == "open"
            assert r.address == "::1"
        assert socketkit.check("::1", port).ok
    assert socketkit.check("::1", closed_port("::1")).state == "closed"


def test_check_filtered_when_nothing_answers():
    with full_backlog() as port:
        r = socketkit.check("127.0.0.1", port, timeout=0.3)
    assert r.state == "filtered"
    assert r.rtt_ms is None


def test_unresolvable_name_is_an_error_result():
    r = socketkit.check("no-such-host.invalid", 80, timeout=0.5)
    assert r.state == "error"
    assert r.address is None
    assert r.error


def test_check_many_keeps_input_order_and_states():
    with listeners(5) as open_ports:
        closed = [closed_port() for _ in range(5)]
        rng = random.Random(4)
        targets: list[str | tuple[str, int]] = []
        want = []
        for i in range(200):
            if rng.random() < 0.5:
                p = rng.choice(open_ports)
                want.append("open")
            else:
                p = rng.choice(closed)
                want.append("closed")
            targets.append(f"127.0.0.1:{p}" if i % 2 else ("127.0.0.1", p))
        res = socketkit.check_many(targets, timeout=2.0, concurrency=64)
    assert isinstance(res, Results)
    assert len(res) == 200
    assert [r.state for r in res] == want
    assert [r.port for r in res] == [
        t[1] if isinstance(t, tuple) else int(t.rsplit(":", 1)[1]) for t in targets
    ]
    assert res.counts == {"open": want.count("open"), "closed": want.count("closed")}
    assert len(res.open) == want.count("open")
    assert all(r.rtt_ms and r.rtt_ms > 0 for r in res.open)
    assert not res.all_ok


def test_check_many_mixes_errors_in_place():
    port = closed_port()
    res = socketkit.check_many(
        [f"127.0.0.1:{port}", "no-such-host.invalid:1", ("127.0.0.1", port)], timeout=0.5
    )
    assert [r.state for r in res] == ["closed", "error", "closed"]


def test_check_iter_yields_every_target_once():
    with listeners(3) as ports:
        closed = closed_port()
        targets = [f"127.0.0.1:{p}" for p in ports] + [f"127.0.0.1:{closed}"] * 3
        got = list(socketkit.check_iter(targets))
    assert len(got) == 6
    assert sorted(r.port for r in got if r.ok) == sorted(ports)
    assert sum(r.state == "closed" for r in got) == 3


def test_check_iter_close_cancels():
    with full_backlog() as port:
        it = socketkit.check_iter([("127.0.0.1", port)] * 50, timeout=30, concurrency=2)
        it.close()  # generator close: cancels the probes still running
        assert list(it) == []


@pytest.mark.parametrize(
    ("call", "arg"),
    [
        (lambda: socketkit.check("127.0.0.1:70000"), "target"),
        (lambda: socketkit.check("127.0.0.1", 70000), "port"),
        (lambda: socketkit.check("127.0.0.1", 0), "port"),
        (lambda: socketkit.check("127.0.0.1:22", 22), "target"),
        (lambda: socketkit.check("nocolon"), "target"),
        (lambda: socketkit.check("[zz]:80"), "target"),
        (lambda: socketkit.check("127.0.0.1:1", proto="sctp"), "proto"),
        (lambda: socketkit.check("127.0.0.1:1", timeout=-1), "timeout"),
        (lambda: socketkit.check_many(["127.0.0.1:1", "bad"]), "targets[1]"),
        (lambda: socketkit.check_many(["127.0.0.1:1"], concurrency=0), "concurrency"),
        (lambda: socketkit.check_many(["127.0.0.1:1"], rate=0), "rate"),
        (lambda: socketkit.scan("127.0.0.1", "70000"), "ports"),
        (lambda: socketkit.scan("127.0.0.1", "5-1"), "ports"),
        (lambda: socketkit.scan("127.0.0.1", 70000), "ports"),
        (lambda: socketkit.scan("10.0.0.0/33", 22), "hosts"),
        (lambda: socketkit.scan("127.0.0.1", 22, concurrency=0), "concurrency"),
        (lambda: socketkit.tcping("127.0.0.1", 1, count=0), "count"),
        (lambda: socketkit.banner("127.0.0.1", 1, max_bytes=0), "max_bytes"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(call, arg):
    with pytest.raises(ValueError) as exc:
        call()
    assert str(exc.value).startswith(arg), str(exc.value)


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="target"):
        socketkit.check(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="targets"):
        socketkit.check_many("127.0.0.1:1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="concurrency"):
        socketkit.check_many(["127.0.0.1:1"], concurrency=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress"):
        socketkit.check_many(["127.0.0.1:1"], progress="yes")  # type: ignore[arg-type]


def test_progress_callback_ends_at_total():
    port = closed_port()
    calls: list[tuple[int, int]] = []
    socketkit.check_many([f"127.0.0.1:{port}"] * 300, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (300, 300)
    assert all(t == 300 and 0 <= d <= t for d, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    calls.clear()
    list(socketkit.check_iter([f"127.0.0.1:{port}"] * 7, progress=lambda d, t: calls.append((d, t))))
    assert calls[0] == (0, 7)
    assert calls[-1] == (7, 7)


def test_progress_callback_exception_propagates():
    def boom(done, total):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        socketkit.check_many([f"127.0.0.1:{closed_port()}"] * 10, progress=boom)


def test_progress_true_draws_a_plain_bar(capsys, monkeypatch):
    # A job this quick draws nothing by default (issue 17); drawing at once
    # shows what the bar draws.
    monkeypatch.setattr(socketkit._progress._PlainBar, "DELAY", 0.0)
    socketkit.check_many([f"127.0.0.1:{closed_port()}"] * 20, progress=True)
    err = capsys.readouterr().err
    assert "20/20" in err


def test_result_exports():
    with listeners(1) as (port,):
        res = socketkit.check_many([f"127.0.0.1:{port}", f"127.0.0.1:{closed_port()}"])
    one = res[0]
    d = one.to_dict()
    assert d["state"] == "open" and d["ok"] is True and d["port"] == port
    assert json.loads(one.to_json())["port"] == port
    rows = json.loads(res.to_json())
    assert [r["state"] for r in rows] == ["open", "closed"]
    csv_text = res.to_csv()
    assert csv_text.splitlines()[0] == "host,address,port,proto,state,ok,rtt_ms,error"
    assert len(csv_text.splitlines()) == 3
    assert "<table" in one._repr_html_()
    html = res._repr_html_()
    assert "<table" in html and "</table>" in html and "open" in html
    text = repr(res)
    assert "open" in text and "closed" in text and str(port) in text
    assert f"127.0.0.1:{port}/tcp open" in repr(one)
    assert isinstance(res[:1], Results)


def test_to_pandas():
    res = socketkit.check_many([f"127.0.0.1:{closed_port()}"])
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ImportError, match="pip install pandas"):
            res.to_pandas()
    else:
        df = res.to_pandas()
        assert list(df["state"]) == ["closed"]


def test_a_silent_resolver_cannot_hang_a_run():
    """glibc waits 5 s x 2 on a silent DNS server; probes give up on a name
    after max(timeout, 2 s) and still answer for the other targets."""
    r = subprocess.run(
        [sys.executable, str(HERE / "silent_dns_child.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if r.returncode == 77:
        pytest.skip("needs root for a private network and mount namespace")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["states"] == ["error", "closed"]
    assert "timed out" in out["error"]
    assert out["took_many"] < 5
    assert out["scan_error"] == "TimeoutError"
    assert out["took_scan"] < 5
    assert out["one"] == "error"
    assert out["took_one"] < 5


def _reference_ports(spec: str) -> list[int]:
    out: dict[int, None] = {}
    for part in spec.split(","):
        lo, sep, hi = part.partition("-")
        if sep:
            a = int(lo) if lo.strip() else 1
            b = int(hi) if hi.strip() else 65535
            out.update(dict.fromkeys(range(a, b + 1)))
        else:
            out[int(part)] = None
    return list(out)


def test_port_specs_match_a_reference_parser():
    rng = random.Random(7)
    for _ in range(300):
        parts = []
        for _ in range(rng.randint(1, 5)):
            a = rng.randint(1, 65535)
            kind = rng.random()
            if kind < 0.4:
                parts.append(str(a))
            elif kind < 0.9:
                b = min(65535, a + rng.randint(0, 50))
                parts.append(f"{a}-{b}")
            else:
                parts.append(f"{max(1, 65535 - rng.randint(0, 5))}-")
        spec = ",".join(parts)
        assert socketkit._probe_core._parse_ports(spec) == _reference_ports(spec), spec
    assert socketkit._probe_core._parse_ports([22, "80-81", range(100, 102)]) == [22, 80, 81, 100, 101]


def test_empty_target_list():
    calls: list[tuple[int, int]] = []
    res = socketkit.check_many([], progress=lambda d, t: calls.append((d, t)))
    assert res == [] and calls[-1] == (0, 0)
    with pytest.raises(ValueError, match=r"^hosts"):
        socketkit.scan([], 22)
    with pytest.raises(ValueError, match=r"^ports"):
        socketkit.scan("127.0.0.1", [])
