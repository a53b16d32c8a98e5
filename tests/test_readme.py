"""Every README code block runs (issue 17, item 18): Python blocks run as
scripts and pass `mypy --strict`, the console session is replayed and
compared with its text (times aside). A block that needs something a test
cannot have (a Redis server, an example network, root and apt) says so in
the README itself, in a `<!-- readme-test: skip: REASON -->` line above it."""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
SKIP = re.compile(r"<!-- readme-test: skip: (.+?) -->")


@dataclass
class Block:
    line: int
    lang: str
    text: str
    skip: str | None

    def __str__(self) -> str:
        return f"README.md:{self.line}:{self.lang or 'text'}"


def blocks() -> list[Block]:
    lines = README.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start = i
        end = lines.index("```", i + 1)
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.search(before)
        out.append(
            Block(start + 1, m.group(1), "\n".join(lines[start + 1 : end]) + "\n", skip and skip.group(1))
        )
        i = end + 1
    return out


ALL = blocks()
PYTHON = [b for b in ALL if b.lang == "python" and not b.skip]
CONSOLE = [b for b in ALL if b.lang == "console" and not b.skip]


def test_every_block_runs_or_says_why() -> None:
    assert PYTHON and CONSOLE
    for b in ALL:
        assert b.lang in ("python", "console") or b.skip, f"{b}: runs as no test and says no reason to skip"
        if b.skip:
            assert len(b.skip) > 10, f"{b}: say why it cannot run"


@pytest.mark.parametrize("block", PYTHON, ids=str)
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(block.text)
    r = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 0, f"{block}\n{r.stdout}\n{r.stderr}"


@pytest.mark.parametrize("block", PYTHON, ids=str)
def test_python_block_passes_mypy_strict(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(block.text)
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), str(script)],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=tmp_path,
    )
    assert r.returncode == 0, f"{block}\n{r.stdout}{r.stderr}"


def _normal(lines: list[str]) -> list[str]:
    """Times and column padding vary from run to run; the rest must not."""
    return [re.sub(r"\s+", " ", re.sub(r"\d+\.\d+", "N", line)).strip() for line in lines]


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("block", CONSOLE, ids=str)
def test_console_session_replays(block: Block) -> None:
    if not (_free(7000) and _free(7001)):
        pytest.skip("the session needs 127.0.0.1:7000 and :7001 free")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    steps: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    background: list[subprocess.Popen[str]] = []
    last = 0
    try:
        for command, expected in steps:
            if command == "echo $?":
                got = [str(last)]
            elif command.endswith(" &"):
                proc = subprocess.Popen(shlex.split(command[:-2]), stdout=subprocess.PIPE, text=True, env=env)
                background.append(proc)
                assert proc.stdout is not None
                ready, _, _ = select.select([proc.stdout], [], [], 30)
                assert ready, command
                got = [proc.stdout.readline().rstrip("\n")]
            else:
                r = subprocess.run(
                    command,
                    shell=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows
                    text=True,
                    env=env,
                    timeout=60,
                )
                last = r.returncode
                got = r.stdout.splitlines()
            assert _normal(got) == _normal(expected), f"$ {command}\n" + "\n".join(got)
    finally:
        for proc in background:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=10)
