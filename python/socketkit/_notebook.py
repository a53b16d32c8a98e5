"""Jupyter support: is this a notebook kernel, and a progress bar drawn as
an updating HTML output.

A terminal bar in a notebook is wrong twice: every ``\\r`` redraw becomes
one more fragment in the cell's output, and tqdm's widget bar needs
ipywidgets (without it tqdm warns "IProgress not found" and falls back to
its text bar). :class:`HtmlBar` needs only IPython, which every kernel has:
it displays one output and updates it in place through its display id.
"""

from __future__ import annotations

import html
import importlib
import sys
import time
from typing import Any

__all__ = ["HtmlBar", "in_notebook", "widgets_available"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel), where output goes to a
    frontend that renders HTML; False in a terminal, terminal IPython and
    plain scripts. IPython is never imported here: a script that did not
    import it is not in a notebook."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    # ZMQInteractiveShell has a kernel; TerminalInteractiveShell has none.
    return shell is not None and getattr(shell, "kernel", None) is not None


def widgets_available() -> bool:
    """True when tqdm's notebook bar can draw: ipywidgets imports."""
    try:
        importlib.import_module("ipywidgets")
    except ImportError:
        return False
    return True


class HtmlBar:
    """A progress bar as one HTML output of the running cell, updated in
    place (an HTML ``<progress>`` plus ``done/total``, percent, rate, ETA).

    Redrawn at most ``INTERVAL`` times a second so a 65,535-port scan does
    not flood the kernel's output channel; jobs of one item or done within
    ``DELAY`` seconds draw nothing, as the terminal bar. Left in place when
    done (as tqdm's notebook bar), showing the total and the time taken.
    Thread-agnostic: updates go through the display id, so the callback may
    run on any thread of the kernel.
    """

    DELAY = 0.5
    INTERVAL = 0.2

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.start = time.monotonic()
        self.last = 0.0
        self.handle: Any = None
        self.state = (0, 0)
        self.drawn = False
        self.finished = False

    def render(self, done: int, total: int, elapsed: float, final: bool = False) -> dict[str, str]:
        """The bar as a ``{"text/html", "text/plain"}`` bundle."""
        pct = 100.0 * done / total if total else 100.0
        rate = done / elapsed if elapsed > 0 else 0.0
        if final:
            tail = f"{done}/{total} in {elapsed:.2f} s" + ("" if done >= total else " (stopped)")
        else:
            eta = f", ETA {(total - done) / rate:.0f} s" if rate > 0 and done < total else ""
            tail = f"{done}/{total} {pct:.0f}% {rate:.0f}/s{eta}"
        text = f"{self.desc}: {tail}"
        bar = f'<progress value="{done}" max="{max(total, 1)}" style="width:16em"></progress>'
        page = (
            f'<div class="socketkit-progress" style="font-family:monospace">{bar} {html.escape(text)}</div>'
        )
        return {"text/html": page, "text/plain": text}

    def _show(self, bundle: dict[str, str]) -> None:
        display = importlib.import_module("IPython.display")
        if self.handle is None:
            self.handle = display.display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)

    def __call__(self, done: int, total: int) -> None:
        self.state = (done, total)
        now = time.monotonic()
        if total <= 1 or now - self.start < self.DELAY:
            return
        if done < total and now - self.last < self.INTERVAL:
            return
        self.last = now
        self.drawn = True
        self.finished = done >= total
        self._show(self.render(done, total, now - self.start, final=self.finished))

    def close(self) -> None:
        # A job stopped early (Ctrl-C, an error) says where it stopped.
        done, total = self.state
        if self.drawn and not self.finished:
            self.finished = True
            self._show(self.render(done, total, time.monotonic() - self.start, final=True))
