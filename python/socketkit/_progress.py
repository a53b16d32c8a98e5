"""Progress reporting for long probes: ``progress=True`` draws a bar (tqdm
when installed, a plain one on stderr otherwise); a callable receives
``(done, total)`` and its last call has ``done == total``."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "make_progress"]

ProgressArg = bool | Callable[[int, int], Any] | None


class _PlainBar:
    """A one-line bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        width = 30
        filled = width * done // total if total else width
        pct = 100.0 * done / total if total else 100.0
        sys.stderr.write(f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {pct:5.1f}%")
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


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
