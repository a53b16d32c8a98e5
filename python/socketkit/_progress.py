"""Progress reporting for long probes: ``progress=True`` draws a bar (tqdm
when installed, a plain one on stderr otherwise); a callable receives
``(done, total)`` and its last call has ``done == total``."""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "make_progress"]

ProgressArg = bool | Callable[[int, int], Any] | None


class _PlainBar:
    """A one-line bar on stderr: redrawn at most 10 times a second, as wide
    as the terminal (never wrapping), with rate and ETA, and erased when
    done, so the results print where it was. A job done within
    ``DELAY`` seconds, or of one item, draws nothing."""

    DELAY = 0.5

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.start = time.monotonic()
        self.last = 0.0
        self.drawn = 0  # the length of the line on screen

    @staticmethod
    def _columns() -> int:
        try:
            return os.get_terminal_size(sys.stderr.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return 80

    def line(self, done: int, total: int, width: int, elapsed: float) -> str:
        """The bar's text for a terminal ``width`` columns wide (one less is
        used: writing the last column wraps some terminals)."""
        pct = 100.0 * done / total if total else 100.0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f" ETA {(total - done) / rate:.0f}s" if rate > 0 and done < total else ""
        tail = f" {done}/{total} {pct:3.0f}% {rate:.0f}/s{eta}"
        room = width - 1 - len(self.desc) - len(tail) - 3
        if room >= 5:
            filled = room * done // total if total else room
            return f"{self.desc} [{'#' * filled}{'.' * (room - filled)}]{tail}"
        return f"{self.desc}{tail}"[: max(width - 1, 0)]

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if total <= 1 or now - self.start < self.DELAY:
            return
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        text = self.line(done, total, self._columns(), now - self.start)
        pad = " " * max(self.drawn - len(text), 0)
        sys.stderr.write(f"\r{text}{pad}")
        sys.stderr.flush()
        self.drawn = len(text)

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\r" + " " * self.drawn + "\r")
            sys.stderr.flush()
            self.drawn = 0


class _TqdmBar:
    def __init__(self, desc: str) -> None:
        tqdm = importlib.import_module("tqdm.auto").tqdm
        self.bar = tqdm(total=0, desc=desc, unit="probe")

    def __call__(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
            self.bar.refresh()
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class Progress:
    """The callback handed to the core plus what to close afterwards."""

    def __init__(self, callback: Callable[[int, int], Any] | None, closer: Callable[[], None] | None) -> None:
        self.callback = callback
        self._closer = closer

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None


def make_progress(progress: ProgressArg, desc: str) -> Progress:
    """Turn the ``progress`` argument into a callback."""
    if progress is None or progress is False:
        return Progress(None, None)
    if progress is True:
        bar: _PlainBar | _TqdmBar
        try:
            bar = _TqdmBar(desc)
        except ImportError:
            bar = _PlainBar(desc)
        return Progress(bar, bar.close)
    if callable(progress):
        return Progress(progress, None)
    raise TypeError(
        f"progress must be None, a bool or a callable(done, total), got {type(progress).__name__}"
    )
