"""Socket options are typed: the stub's TcpOptions/UdpOptions make `mypy
--strict` catch a misspelled option in a user's script, and the runtime
TypedDicts match what the constructors accept."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import socketkit

SCRIPTS = Path(__file__).parent / "typecheck"
EXPECTED = re.compile(r"# error: (.+)$")


def expected_errors(script: Path) -> dict[int, str]:
    """Line number -> text the mypy error on that line must contain."""
    lines = script.read_text().splitlines()
    return {n: m.group(1).strip() for n, line in enumerate(lines, 1) if (m := EXPECTED.search(line))}


@pytest.mark.parametrize("script", sorted(SCRIPTS.glob("*.py")), ids=lambda p: p.stem)
def test_mypy_strict_on_a_user_script(script: Path, tmp_path: Path) -> None:
    expected = expected_errors(script)
    # A fresh cache per script (mypy's incremental cache can carry a stale
    # view of a package from one script to the next); a cold run is ~1 s.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no config file of the checkout applies
        timeout=110,
    )
    report = proc.stdout + proc.stderr
    errors: dict[int, list[str]] = {}
    for line in proc.stdout.splitlines():
        m = re.match(rf"{re.escape(str(script))}:(\d+): error: (.*)", line)
        if m:
            errors.setdefault(int(m.group(1)), []).append(m.group(2))
    assert set(errors) == set(expected), report
    for n, text in expected.items():
        assert any(text in e for e in errors[n]), f"line {n}: expected {text!r}\n{report}"
    assert proc.returncode == (1 if expected else 0), report


def test_the_misspelled_script_is_checked():
    assert expected_errors(SCRIPTS / "misspelled.py"), "misspelled.py must expect an error"
    assert not expected_errors(SCRIPTS / "good.py")


def keys(td: type) -> set[str]:
    return set(typing.get_type_hints(td))


def test_typed_dicts_are_exported_and_total_false():
    assert "TcpOptions" in socketkit.__all__
    assert "UdpOptions" in socketkit.__all__
    for td in (socketkit.TcpOptions, socketkit.UdpOptions):
        assert td.__required_keys__ == frozenset()
        assert td.__optional_keys__ == frozenset(keys(td))
        assert td.__module__ == "socketkit._core"
        for name in keys(td):
            assert name in td.__doc__
    hints = typing.get_type_hints(socketkit.TcpOptions)
    assert hints["nodelay"] is bool
    assert hints["keepalive"] == bool | socketkit.Keepalive
    assert hints["linger"] == float | None


def a_value(hint: object) -> object:
    """A valid value of an option's type (of a union's first member)."""
    first = (typing.get_args(hint) or (hint,))[0]
    return {bool: True, int: 1, str: "lo", float: 1.0}[first]


def test_each_protocol_refuses_the_others_options(echo_server):
    tcp = typing.get_type_hints(socketkit.TcpOptions)
    udp = typing.get_type_hints(socketkit.UdpOptions)
    assert tcp.keys() & udp.keys() >= {"recv_buffer", "ttl", "only_v6", "bind_device"}
    for name in udp.keys() - tcp.keys():
        with pytest.raises(ValueError, match=f"{name} applies only to UDP"):
            socketkit.TcpClient(echo_server.address, timeout=5, **{name: a_value(udp[name])})
    for name in tcp.keys() - udp.keys():
        with pytest.raises(ValueError, match=f"{name} applies only to TCP"):
            socketkit.UdpSocket(("127.0.0.1", 0), **{name: a_value(tcp[name])})


def test_unknown_option_lists_the_table_and_suggests_a_name():
    with pytest.raises(TypeError) as ei:
        socketkit.UdpSocket(reuse_adress=True)
    msg = str(ei.value)
    assert "UdpSocket() got an unexpected keyword argument 'reuse_adress'" in msg
    assert "did you mean 'reuse_address'?" in msg
    listed = set(msg.split("socket options: ")[1].rstrip(")").split(", "))
    assert listed == keys(socketkit.TcpOptions) | keys(socketkit.UdpOptions)
    with pytest.raises(TypeError) as ei:
        socketkit.TcpServer(backlogg=5)
    assert "did you mean" not in str(ei.value)
