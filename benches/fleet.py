"""Fleet check wall time: TARGETS loopback ports (a mix of open and
closed) checked from each of 3 vantage points, once with
``socketkit.net.check`` (one task, every target) and once with
``ansible.builtin.wait_for`` in a loop (one task per target, the way
playbooks do it today), one ``ansible-playbook`` run each, in one run.

    sudo python benches/fleet.py [--quick] [--targets 500]

The inventory is tests/test_ansible_fleet.py's: each host is
``ansible_connection: local`` with a Python that runs inside its own
network namespace (``ip netns exec``), where a listener holds its own
subset of the ports (each host has a different fifth of them closed), so
each vantage point has its own view and traffic stays on loopback inside
namespaces this bench made. ``wait_for`` gets ``timeout: 1``, the least it
takes (an integer): a closed port costs it that second, as it does in a
playbook. Both playbooks save each host's count of open targets on the
controller, and the counts are checked against what each host listens on.
Needs root (namespaces) and ansible-core. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

from common import Row  # noqa: E402

BIN = Path(sys.executable).parent
HOSTS = ["alpha", "beta", "gamma"]
FIRST_PORT = 20000

#: Listens on the ports given (accepts and closes), prints READY.
LISTENER = """
import selectors, socket
sel = selectors.DefaultSelector()
for p in {ports}:
    s = socket.socket()
    s.bind(("127.0.0.1", p))
    s.listen(1024)
    sel.register(s, selectors.EVENT_READ)
print("READY", flush=True)
while True:
    for key, _ in sel.select():
        key.fileobj.accept()[0].close()
"""

SAVE = """
    - name: Save this host's count of open targets on the controller
      ansible.builtin.copy:
        content: "{{{{ {count} | to_json }}}}"
        dest: "{{{{ out_dir }}}}/{{{{ inventory_hostname }}}}.json"
        mode: "0644"
      delegate_to: localhost
"""

SOCKETKIT_PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Check every target
      socketkit.net.check:
        targets: "{{ fleet_targets }}"
        timeout: 1.0
        fail_on_down: false
      register: reach
""" + SAVE.format(count="reach.results | selectattr('state', 'equalto', 'open') | list | length")

WAIT_FOR_PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Wait for each target
      ansible.builtin.wait_for:
        host: "{{ item.split(':')[0] }}"
        port: "{{ item.split(':')[1] | int }}"
        timeout: 1
      loop: "{{ fleet_targets }}"
      register: reach
      ignore_errors: true
""" + SAVE.format(count="reach.results | rejectattr('failed') | list | length")


def views(n: int) -> dict[str, list[int]]:
    """Each host's open ports: all but a fifth, a different fifth per host."""
    ports = range(FIRST_PORT, FIRST_PORT + n)
    return {h: [p for p in ports if (p + i) % 5] for i, h in enumerate(HOSTS)}


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
        ANSIBLE_FORKS="5",
        PATH=f"{BIN}{os.pathsep}{e.get('PATH', '')}",
    )
    return e


def playbook(
    tmp: Path, inventory: Path, name: str, text: str, targets: list[str]
) -> tuple[float, dict[str, int]]:
    """One ansible-playbook run: (wall seconds, open targets per host)."""
    (tmp / f"{name}.yml").write_text(text)
    out = tmp / f"out-{name}"
    out.mkdir()
    extra = json.dumps({"fleet_targets": targets, "out_dir": str(out)})
    t0 = time.monotonic()
    r = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), f"{name}.yml", "-e", extra],
        env=env(tmp),
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"{name} playbook failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return took, {h: int(json.loads((out / f"{h}.json").read_text())) for h in HOSTS}


def measure(n: int) -> dict[str, object]:
    from _child import can_make_netns, netns, start

    if not can_make_netns():
        raise SystemExit("needs root and iproute2 (network namespaces)")
    if not (BIN / "ansible-playbook").exists():
        raise SystemExit("needs ansible-core (pip install 'socketkit[test]')")
    want = views(n)
    targets = [f"127.0.0.1:{p}" for p in range(FIRST_PORT, FIRST_PORT + n)]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        hosts = {}
        for name in HOSTS:
            prefix = stack.enter_context(netns())
            proc = start(LISTENER.format(ports=want[name]), prefix)

            def stop(pid: int = proc.pid, p: subprocess.Popen[str] = proc) -> None:
                os.kill(pid, signal.SIGTERM)  # the PID we started
                p.communicate(timeout=10)

            stack.callback(stop)
            wrapper = tmp / f"python-{name}"
            wrapper.write_text("#!/bin/sh\nexec " + " ".join([*prefix, sys.executable]) + ' "$@"\n')
            wrapper.chmod(0o755)
            hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": str(wrapper)}
        inventory = tmp / "inventory.json"
        inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
        sk_s, sk_open = playbook(tmp, inventory, "socketkit", SOCKETKIT_PLAY, targets)
        wf_s, wf_open = playbook(tmp, inventory, "wait_for", WAIT_FOR_PLAY, targets)
    expected = {h: len(p) for h, p in want.items()}
    assert sk_open == wf_open == expected, (sk_open, wf_open, expected)
    return {
        "targets": n,
        "vantage_points": len(HOSTS),
        "open_per_host": expected,
        "socketkit_net_check_s": sk_s,
        "wait_for_loop_s": wf_s,
        "ratio": wf_s / sk_s,
    }


def rows(result: dict[str, object]) -> list[Row]:
    n = result["targets"]
    return [
        Row(
            f"check {n} targets from 3 vantage points (ansible-playbook wall time)",
            "s",
            False,
            float(result["socketkit_net_check_s"]),  # type: ignore[arg-type]
            {"wait_for loop": float(result["wait_for_loop_s"])},  # type: ignore[arg-type]
            ">= 20x faster",
        )
    ]


def run(quick: bool) -> list[Row]:
    return rows(measure(100 if quick else 500))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 targets instead of 500")
    ap.add_argument("--targets", type=int, default=None)
    args = ap.parse_args()
    result = measure(args.targets or (100 if args.quick else 500))
    print(json.dumps(result, indent=2))
    from common import table

    print(table(rows(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
