"""A real Jupyter kernel (ipykernel, started by jupyter_client) for tests:
run a cell, get its reply and its outputs as a notebook would keep them
(``update_display_data`` applied to the output it updates)."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

Output = dict[str, Any]


class Kernel:
    """One ipykernel process and a blocking client talking to it."""

    def __init__(self, cwd: Path) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(cwd), env=_env())
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    @property
    def pid(self) -> int:
        return int(self.km.provisioner.pid)  # type: ignore[union-attr]

    def run(
        self, code: str, timeout: float = 60.0, on_start: Callable[[], None] | None = None
    ) -> tuple[dict[str, Any], list[Output]]:
        """Execute ``code``; return the execute_reply content and the
        outputs. ``on_start`` runs once the kernel has begun this cell (its
        ``execute_input`` arrived) and its first stream output came out."""
        msg_id = self.kc.execute(code)
        outputs: list[Output] = []
        by_display_id: dict[str, Output] = {}
        deadline = time.monotonic() + timeout
        started = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"cell did not finish in {timeout} s: {code!r}")
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                break
            if kind == "stream" and on_start is not None and not started:
                started = True
                on_start()
            if kind in ("stream", "error", "display_data", "execute_result"):
                out = {"output_type": kind, **content}
                outputs.append(out)
                did = content.get("transient", {}).get("display_id")
                if did:
                    by_display_id[did] = out
            elif kind == "update_display_data":
                did = content.get("transient", {}).get("display_id")
                if did in by_display_id:
                    by_display_id[did]["data"] = content["data"]
                    by_display_id[did]["updates"] = by_display_id[did].get("updates", 0) + 1
        while True:
            reply = self.kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 1.0))
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"], outputs

    def ok(self, code: str, timeout: float = 60.0) -> list[Output]:
        """Run ``code``, which must not raise; its outputs."""
        reply, outputs = self.run(code, timeout)
        assert reply["status"] == "ok", (code, reply.get("ename"), reply.get("evalue"), outputs)
        return outputs

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    # No debugger warning about frozen modules in the outputs.
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def text_of(outputs: list[Output]) -> str:
    """Every text an output shows: streams, plain text, HTML, tracebacks."""
    parts: list[str] = []
    for o in outputs:
        parts.append(o.get("text", ""))
        parts += [v if isinstance(v, str) else str(v) for v in o.get("data", {}).values()]
        parts += o.get("traceback", [])
    return "\n".join(parts)
