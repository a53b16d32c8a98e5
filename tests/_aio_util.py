"""Helpers for the socketkit.aio tests: run a coroutine under asyncio and
under uvloop, count the process's fds and threads, poll for a condition."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test extra
    uvloop = None

LOOPS = ["asyncio", pytest.param("uvloop", marks=pytest.mark.skipif(uvloop is None, reason="no uvloop"))]


def runner(name: str) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """``asyncio.run`` or ``uvloop.run``."""
    if name == "uvloop":
        assert uvloop is not None
        return uvloop.run
    return asyncio.run


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


async def settles(count: Callable[[], int], target: int, within: float = 2.0) -> int:
    """Poll ``count()`` until it is at most ``target`` (work ended on other
    threads lets go of its fds a moment after the awaitable returned);
    returns the last count."""
    deadline = time.monotonic() + within
    n = count()
    while n > target and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        n = count()
    return n


class Heartbeat:
    """A task ticking every 10 ms; ``max_gap`` is the longest time between
    two ticks, i.e. the longest the event loop was blocked (plus 10 ms).

    The objects that exist before (pytest's own, ~10^5) are frozen out of
    the garbage collector meanwhile: a full collection then costs what the
    measured code allocated, not what the test runner holds."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            self.ticks += 1
            last = now

    async def __aenter__(self) -> Heartbeat:
        gc.collect()
        gc.freeze()
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        finally:
            gc.unfreeze()
