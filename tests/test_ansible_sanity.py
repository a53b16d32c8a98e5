"""Issue 14: ``ansible-test sanity`` on the socketkit.net collection.

Every sanity test that can run here runs, on a copy of the collection (so
ansible-test's output stays out of the repository): the ones that need no
packages, and the ones that install theirs (pep8, pylint, validate-modules,
yamllint, import, ansible-doc, runtime-metadata, ...) with ``--requirements``
into ansible-test's own virtualenvs from the package index pip is set up
for. ansible-test bootstraps pip in those virtualenvs with a script it
downloads from its own file server, which this machine cannot reach:
tests/ansible_sanity/get_pip.py stands in for it (see its docstring).
All of them run (the collection's README says which need the package
index); the first run installs the virtualenvs (minutes), later runs
reuse them (about a minute and a half).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COLLECTION = ROOT / "ansible_collections" / "socketkit" / "net"
ANSIBLE_TEST = Path(sys.executable).parent / "ansible-test"

pytestmark = pytest.mark.skipif(not ANSIBLE_TEST.exists(), reason="ansible-core is not installed")


def pip_bootstrap(home: Path) -> None:
    """Put the stand-in bootstrap where ansible-test looks for its cached
    get-pip script, unless a real one is there."""
    import ansible_test._internal.python_requirements as reqs

    source = Path(reqs.__file__).read_text()
    version = re.search(r"pip='([0-9.]+)'", source)
    assert version, "ansible-test's pip pin moved"
    cache = home / ".ansible" / "test" / "cache" / f"get_pip_{version.group(1).replace('.', '_')}.py"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(__file__).parent / "ansible_sanity" / "get_pip.py", cache)


def listed_tests(cwd: Path) -> list[str]:
    r = subprocess.run(
        [str(ANSIBLE_TEST), "sanity", "--list-tests"], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.split() if line and not line.startswith("WARNING")]


@pytest.mark.timeout(1200)  # the first run installs pylint & co.; later ones take ~1-2 min
def test_ansible_test_sanity_passes(tmp_path: Path) -> None:
    home = Path(os.path.expanduser("~"))
    pip_bootstrap(home)
    copy = tmp_path / "ansible_collections" / "socketkit" / "net"
    shutil.copytree(COLLECTION, copy, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.tar.gz"))
    tests = listed_tests(copy)
    assert {"validate-modules", "pylint", "pep8", "yamllint", "import", "compile"} <= set(tests), tests
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    r = subprocess.run(
        [str(ANSIBLE_TEST), "sanity", "--python", py, "--requirements", "--color", "no"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=1150,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    ran = re.findall(r'Running sanity test "([^"]+)"', out)
    assert set(ran) == set(tests), ran
    assert "ERROR" not in out, out[-6000:]
