"""Progress reporting for long probes: ``progress=True`` draws a bar (tqdm
when installed, a plain one on stderr otherwise); a callable receives
``(done, total)`` and its last call has ``done == total``.

In a Jupyter kernel the bar is tqdm's widget (tqdm and ipywidgets
installed) or an HTML output updated in place (see ``_notebook``), never
``\r`` text. The async probes (``socketkit.aio``, issue 12) take the same
``progress`` argument. Their hook is :func:`progress_for`::

    with progress_for(progress, "scan") as callback:
        raw = await _core._scan_async(..., progress=callback)

which closes the bar however the awaitable ends (cancelled included). The
notebook bars update through IPython's display ids and tqdm, so the callback
may run on the event loop's thread or a core thread (tested from a worker
thread in tests/test_notebook_kernel.py); the plain bar writes to stderr
from whichever thread calls it."""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from socketkit._notebook import HtmlBar, in_notebook, widgets_available

__all__ = ["Progress", "make_progress", "progress_for"]

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
    """tqdm's bar (``tqdm.auto``: the widget in a notebook, text in a
    terminal), made on the first call, when the total is known: a bar
    started at ``total=0`` and resized later shows no percentage or ETA
    until then, and the notebook widget keeps its first scale. Like the
    plain bar, a job of one item draws nothing and a bar appears only after
    ``_PlainBar.DELAY`` seconds (tqdm's own ``delay``): one setting for
    both."""

    def __init__(self, desc: str) -> None:
        self.tqdm = importlib.import_module("tqdm.auto").tqdm
        self.desc = desc
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if total <= 1:
                return
            self.bar = self.tqdm(total=total, desc=self.desc, unit="probe", delay=_PlainBar.DELAY)
        elif self.bar.total != total:
            self.bar.total = total
            self.bar.refresh()
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
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


def _bar(desc: str) -> _PlainBar | _TqdmBar | HtmlBar:
    """The bar ``progress=True`` draws. In a Jupyter kernel: tqdm's widget
    when tqdm and ipywidgets are both installed, else an updating HTML
    output (tqdm without ipywidgets warns "IProgress not found" and writes
    ``\r`` fragments into the cell). Elsewhere: tqdm if installed, else the
    plain bar on stderr."""
    if in_notebook():
        if widgets_available():
            try:
                return _TqdmBar(desc)
            except ImportError:
                pass
        return HtmlBar(desc)
    try:
        return _TqdmBar(desc)
    except ImportError:
        return _PlainBar(desc)


def make_progress(progress: ProgressArg, desc: str) -> Progress:
    """Turn the ``progress`` argument into a callback."""
    if progress is None or progress is False:
        return Progress(None, None)
    if progress is True:
        bar = _bar(desc)
        return Progress(bar, bar.close)
    if callable(progress):
        return Progress(progress, None)
    raise TypeError(
        f"progress must be None, a bool or a callable(done, total), got {type(progress).__name__}"
    )


@contextmanager
def progress_for(progress: ProgressArg, desc: str) -> Iterator[Callable[[int, int], Any] | None]:
    """``make_progress`` as a ``with`` block: the callback to hand the core
    (or None), and the bar closed on the way out, whether the work ended,
    raised or (in ``socketkit.aio``) was cancelled."""
    bar = make_progress(progress, desc)
    try:
        yield bar.callback
    finally:
        bar.close()


class _RawIter(Protocol):
    """The core's result iterators (``ProbeIter``, ``ServiceIter``)."""

    @property
    def total(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...
    def close(self) -> None: ...


T = TypeVar("T")


def stream(raw: _RawIter, make: Callable[[Any], T], progress: ProgressArg, desc: str) -> Iterator[T]:
    """The core's results as they complete, each made by ``make``, with
    progress from ``(0, total)`` on; closing the generator (or dropping it)
    cancels what is still running and closes the bar."""
    bar = make_progress(progress, desc)
    cb = bar.callback
    done = 0
    try:
        if cb is not None:
            cb(0, raw.total)
        for t in raw:
            done += 1
            yield make(t)
            if cb is not None:
                cb(done, raw.total)
    finally:
        raw.close()
        bar.close()
