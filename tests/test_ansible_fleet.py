"""Issue 14: the socketkit.net collection run by a real ``ansible-playbook``
against three vantage points on this machine, each its own network
namespace with different loopback services, and a fourth host whose
Python has no socketkit.

Each host is ``ansible_connection: local`` with an
``ansible_python_interpreter`` that runs this venv's Python inside that
host's namespace (``ip netns exec``), so the same check sees a different
network per host. Traffic stays on loopback inside namespaces the test
made; every listener is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from _child import can_make_netns, netns, start

ROOT = Path(__file__).resolve().parent.parent
COLLECTION = ROOT / "ansible_collections" / "socketkit" / "net"
BIN = Path(sys.executable).parent
MODULES = ["check", "wait", "scan", "tcping", "tls"]

try:
    import ansible

    HAVE_ANSIBLE = (BIN / "ansible-playbook").exists()
except ImportError:
    HAVE_ANSIBLE = False

needs_ansible = pytest.mark.skipif(
    not HAVE_ANSIBLE, reason="ansible-core is not installed (pip install 'socketkit[test]')"
)

#: The ports of the test; each host listens on its own subset.
P1, P2, PU = 17001, 17002, 17003
TARGETS = [f"127.0.0.1:{P1}", f"127.0.0.1:{P2}"]

#: Per host: the TCP ports it listens on (gamma also binds a silent UDP port).
VIEWS = {"alpha": [P1], "beta": [P2], "gamma": [P1, P2]}

#: gamma's port that closes each connection at once: the server side
#: closes first, so the port is left with connections in TIME_WAIT.
PD = 17004

#: Listens on the ports given, accepts and never says a word: open to a
#: check, silent to a dialogue (on PD it closes at once). Prints READY once
#: listening.
LISTENER = """
import selectors, socket, sys
sel = selectors.DefaultSelector()
for p in {ports} + [{pd}]:
    s = socket.socket()
    s.bind(("127.0.0.1", p))
    s.listen()
    sel.register(s, selectors.EVENT_READ, p)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", {udp}))
held = []
print("READY", flush=True)
while True:
    for key, _ in sel.select():
        conn = key.fileobj.accept()[0]
        if key.data == {pd}:
            conn.close()
        else:
            held.append(conn)
"""


def env(tmp: Path) -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        ANSIBLE_COLLECTIONS_PATH=str(ROOT),
        ANSIBLE_HOME=str(tmp / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local"),
        ANSIBLE_REMOTE_TMP=str(tmp / "ansible-remote"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_PYTHON_INTERPRETER="auto_silent",
        PATH=f"{BIN}{os.pathsep}{e.get('PATH', '')}",
    )
    return e


def wrapper(path: Path, command: list[str]) -> str:
    path.write_text("#!/bin/sh\nexec " + " ".join(command) + ' "$@"\n')
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Path]:
    """An inventory of alpha, beta, gamma (each in its own namespace, its
    own listeners) and nosk (a Python without socketkit)."""
    with ExitStack() as stack:
        hosts: dict[str, dict[str, str]] = {}
        for name, ports in VIEWS.items():
            prefix = stack.enter_context(netns())
            proc = start(LISTENER.format(ports=ports, udp=PU, pd=PD), prefix)

            def stop(pid: int = proc.pid, p: subprocess.Popen[str] = proc) -> None:
                os.kill(pid, signal.SIGTERM)
                p.communicate(timeout=10)

            stack.callback(stop)
            interp = wrapper(tmp_path / f"python-{name}", [*prefix, sys.executable])
            hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": interp}
        # -I -S: no site-packages, so no socketkit; the stdlib is enough for Ansible.
        interp = wrapper(tmp_path / "python-nosk", [sys.executable, "-I", "-S"])
        hosts["nosk"] = {"ansible_connection": "local", "ansible_python_interpreter": interp}
        inventory = tmp_path / "inventory.json"
        inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
        yield inventory


def ansible(tmp: Path, *argv: str, tool: str = "ansible-playbook") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), *argv], env=env(tmp), capture_output=True, text=True, timeout=180, cwd=tmp
    )


pytestmark = [
    needs_ansible,
    pytest.mark.netns,
    pytest.mark.skipif(not can_make_netns(), reason="needs root and iproute2 for network namespaces"),
]


def test_each_vantage_point_reports_its_own_view(fleet: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    extra = json.dumps({"fleet_targets": TARGETS, "fleet_report_dir": str(out), "fleet_fail_on_down": False})
    r = ansible(tmp_path, "-i", str(fleet), "socketkit.net.fleet_report", "-e", extra)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["alpha.json", "beta.json", "gamma.json", "nosk.json"]

    # The host without socketkit failed, with the documented message.
    nosk = json.loads((out / "nosk.json").read_text())
    assert nosk["failed"] is True and nosk["vantage"] == "nosk"
    assert "pip install socketkit" in nosk["msg"] and "\n" not in nosk["msg"]
    assert "pip install socketkit" in r.stdout
    # The playbook printed the merged table.
    assert "TARGET" in r.stdout and "alpha" in r.stdout

    # Each host's own registered result: the vantage is its inventory name.
    for name, ports in VIEWS.items():
        doc = json.loads((out / f"{name}.json").read_text())
        assert doc["vantage"] == name and doc["changed"] is False
        assert [x["state"] for x in doc["results"]] == ["open" if p in ports else "closed" for p in (P1, P2)]
        assert doc["ok"] is (len(ports) == 2)

    files = sorted(str(p) for p in out.iterdir())
    rep = subprocess.run([str(BIN / "socketkit"), "report", *files, "--json"], capture_output=True, text=True)
    assert rep.returncode == 1, rep.stderr  # not every vantage point reached every target
    doc = json.loads(rep.stdout)
    assert doc["vantages"] == ["alpha", "beta", "gamma", "nosk"]
    assert doc["targets"] == TARGETS
    got = {(c["vantage"], c["target"]): c["state"] for c in doc["cells"]}
    for name, ports in VIEWS.items():
        for p in (P1, P2):
            assert got[name, f"127.0.0.1:{p}"] == ("open" if p in ports else "closed"), (name, p)
    assert got["nosk", TARGETS[0]] == "missing"
    assert "pip install socketkit" in doc["errors"][0]["msg"]

    # Only gamma sees both: its report alone passes.
    assert subprocess.run([str(BIN / "socketkit"), "report", str(out / "gamma.json")]).returncode == 0


def adhoc(
    tmp: Path, inventory: Path, host: str, module: str, args: dict[str, object], *extra: str
) -> dict[str, object]:
    """Run one module on one host; its result, ``rc`` added (2: failed;
    the tree callback leaves ``failed`` out of the file)."""
    tree = tmp / f"tree-{module}-{host}-{len(list(tmp.glob('tree-*')))}"
    r = ansible(
        tmp,
        host,
        "-i",
        str(inventory),
        "-m",
        f"socketkit.net.{module}",
        "-a",
        json.dumps(args),
        "-t",
        str(tree),
        *extra,
        tool="ansible",
    )
    doc: dict[str, object] = json.loads((tree / host).read_text())
    assert doc.get("vantage") == args.get("vantage", host), r.stdout + r.stderr
    doc["rc"] = r.returncode
    return doc


def test_wait_honours_its_timeout_on_a_silent_target(fleet: Path, tmp_path: Path) -> None:
    # gamma accepts on P1 and never answers: the dialogue never matches.
    tcp = adhoc(
        tmp_path,
        fleet,
        "gamma",
        "wait",
        {
            "targets": [TARGETS[0]],
            "send": "PING\r\n",
            "expect": "+PONG",
            "timeout": 1.5,
            "fail_on_down": False,
        },
    )
    assert tcp["ok"] is False and tcp["rc"] == 0  # fail_on_down: false
    assert 1.5 <= float(tcp["elapsed"]) <= 2.0, tcp  # type: ignore[arg-type]
    assert "not open" in str(tcp["msg"])
    # gamma's UDP port is bound and silent: no reply, no ICMP.
    udp = adhoc(
        tmp_path,
        fleet,
        "gamma",
        "wait",
        {"targets": [f"127.0.0.1:{PU}"], "proto": "udp", "timeout": 1.0, "fail_on_down": False},
    )
    assert udp["ok"] is False and 1.0 <= float(udp["elapsed"]) <= 1.5, udp  # type: ignore[arg-type]
    # The same wait from alpha, whose P2 refuses: closed at once.
    closed = adhoc(
        tmp_path, fleet, "alpha", "wait", {"targets": [TARGETS[1]], "state": "stopped", "timeout": 5}
    )
    assert closed["ok"] is True and float(closed["elapsed"]) < 1.0  # type: ignore[arg-type]


def test_a_target_down_fails_the_task_with_one_line(fleet: Path, tmp_path: Path) -> None:
    doc = adhoc(tmp_path, fleet, "alpha", "check", {"targets": TARGETS})
    assert doc["rc"] == 2 and doc["ok"] is False
    assert doc["msg"] == f"1 of 2 targets not open from alpha: {TARGETS[1]} closed"
    doc = adhoc(
        tmp_path, fleet, "alpha", "check", {"targets": TARGETS, "fail_on_down": False, "vantage": "site-a"}
    )
    assert doc["rc"] == 0 and doc["ok"] is False and {r["vantage"] for r in doc["results"]} == {"site-a"}
    # Check mode: the probes change nothing, so they run and report the same.
    doc = adhoc(tmp_path, fleet, "beta", "check", {"targets": TARGETS, "fail_on_down": False}, "--check")
    assert doc["rc"] == 0 and doc["changed"] is False
    assert [r["state"] for r in doc["results"]] == ["closed", "open"]  # type: ignore[attr-defined]


def test_every_module_fails_clearly_without_socketkit(fleet: Path, tmp_path: Path) -> None:
    for module in MODULES:
        arg = {"hosts": ["127.0.0.1"]} if module == "scan" else {"targets": [TARGETS[0]]}
        doc = adhoc(tmp_path, fleet, "nosk", module, arg)
        assert doc["rc"] != 0 and doc["ok"] is False, (module, doc)
        assert "pip install socketkit" in str(doc["msg"]), (module, doc)


@needs_ansible
def test_the_collection_builds_and_documents_every_module(tmp_path: Path) -> None:
    r = ansible(
        tmp_path,
        "collection",
        "build",
        str(COLLECTION),
        "--output-path",
        str(tmp_path),
        tool="ansible-galaxy",
    )
    assert r.returncode == 0, r.stderr
    with tarfile.open(tmp_path / "socketkit-net-0.1.0.tar.gz") as tar:
        names = tar.getnames()
    for m in MODULES:
        assert f"plugins/modules/{m}.py" in names and f"plugins/action/{m}.py" in names
        doc = ansible(tmp_path, "--json", f"socketkit.net.{m}", tool="ansible-doc")
        assert doc.returncode == 0, doc.stderr
        parsed = json.loads(doc.stdout)[f"socketkit.net.{m}"]
        assert parsed["doc"]["options"]["fail_on_down"]["default"] is True
        assert parsed["examples"] and parsed["return"]["results"]


def test_drained_waits_through_time_wait_as_documented(fleet: Path, tmp_path: Path) -> None:
    # A connection to gamma's PD, closed by the server first: PD is left
    # with a connection in TIME_WAIT (for a minute) inside gamma.
    gamma = str(tmp_path / "python-gamma")
    code = f"import socket; c = socket.create_connection(('127.0.0.1', {PD})); assert c.recv(1) == b''; c.close()"
    subprocess.run([gamma, "-c", code], check=True, timeout=30)
    ss = subprocess.run([gamma, "-c", "print(open('/proc/net/tcp').read())"], capture_output=True, text=True)
    port_hex = f":{PD:04X} "
    assert any(port_hex in line and line.split()[3] == "06" for line in ss.stdout.splitlines()), ss.stdout
    target = {"targets": [f"127.0.0.1:{PD}"], "state": "drained", "fail_on_down": False}
    # TIME_WAIT does not count by default (wait_for's stall, ansible PR #19505).
    drained = adhoc(tmp_path, fleet, "gamma", "wait", {**target, "timeout": 5})
    assert drained["ok"] is True and float(drained["elapsed"]) < 1.0, drained  # type: ignore[arg-type]
    # Counting it, the port does not drain within the deadline, which holds.
    held = adhoc(tmp_path, fleet, "gamma", "wait", {**target, "timeout": 1.0, "drain_ignore": []})
    assert held["ok"] is False and 1.0 <= float(held["elapsed"]) <= 1.5, held  # type: ignore[arg-type]


def readme_playbook() -> str:
    text = (ROOT / "README.md").read_text().split("## From one machine to a fleet", 1)[1]
    return text.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_readme_playbook_runs(fleet: Path, tmp_path: Path) -> None:
    (tmp_path / "fleet.yml").write_text(readme_playbook())
    (tmp_path / "reach").mkdir()
    extra = json.dumps({"targets": TARGETS})
    r = ansible(tmp_path, "-i", str(fleet), "-l", "alpha,beta,gamma", "fleet.yml", "-e", extra)
    assert r.returncode == 0, r.stdout + r.stderr
    files = sorted(str(p) for p in (tmp_path / "reach").iterdir())
    rep = subprocess.run([str(BIN / "socketkit"), "report", *files], capture_output=True, text=True)
    assert rep.returncode == 1
    lines = rep.stdout.splitlines()
    assert lines[0].split() == ["TARGET", "alpha", "beta", "gamma"]
    states = {line.split()[0]: re.findall(r"\b(?:open|closed)\b", line) for line in lines[1:3]}
    assert states == {TARGETS[0]: ["open", "closed", "open"], TARGETS[1]: ["closed", "open", "open"]}
