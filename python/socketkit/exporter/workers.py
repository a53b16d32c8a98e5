"""The exporter's worker processes (``serve(workers=N)``): the counters
they share, a worker's life, and how the parent hands every worker the
configuration text it read (one pipe per worker), so all processes apply
the same configuration however the file changes meanwhile."""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import os
import signal
import struct
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from socketkit.exporter.config import ConfigError

if TYPE_CHECKING:
    from socketkit.exporter.server import Exporter

log = logging.getLogger("socketkit.exporter")


class SharedCounters:
    """Counters that forked workers add to together: fixed slots (a key of
    up to 248 bytes, a 64-bit count) in an anonymous shared mmap made before
    the fork, under one lock shared the same way. A full table drops new
    keys (logged once) rather than grow: keys are module names x results."""

    SLOTS = 1024
    SLOT = 256
    KEY = SLOT - 8

    def __init__(self) -> None:
        self._mem = mmap.mmap(-1, self.SLOTS * self.SLOT)
        self._lock = multiprocessing.Lock()
        self._where: dict[tuple[str, ...], int] = {}  # this process's cache of slot offsets
        self._full = False

    def _slot(self, key: tuple[str, ...]) -> int | None:
        raw = "\0".join(key).encode()[: self.KEY]
        for i in range(self.SLOTS):
            off = i * self.SLOT
            stored = self._mem[off : off + self.KEY].rstrip(b"\0")
            if stored == raw:
                return off
            if not stored:
                self._mem[off : off + len(raw)] = raw
                return off
        if not self._full:
            log.warning("shared counter table full: %r and later keys are not counted", key)
            self._full = True
        return None

    def inc(self, *key: str) -> None:
        with self._lock:  # also orders the slot search against other workers'
            off = self._where.get(key)
            if off is None:
                off = self._slot(key)
                if off is None:
                    return
                self._where[key] = off
            at = off + self.KEY
            (n,) = struct.unpack_from("<Q", self._mem, at)
            struct.pack_into("<Q", self._mem, at, n + 1)

    def items(self) -> Iterator[tuple[tuple[str, ...], int]]:
        with self._lock:
            data = bytes(self._mem)
        for off in range(0, len(data), self.SLOT):
            raw = data[off : off + self.KEY].rstrip(b"\0")
            if not raw:
                break
            yield (
                tuple(raw.decode(errors="replace").split("\0")),
                struct.unpack_from("<Q", data, off + self.KEY)[0],
            )


def default_workers() -> int:
    """The CPU count this process may run on (the CLI's ``--workers``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


SIGNALS = {signal.SIGTERM, signal.SIGHUP}


_FRAME = struct.Struct("!?I")  # (an error, not the text), length


def send_config(fds: list[int], text: str | ConfigError) -> None:
    body = str(text).encode()
    frame = memoryview(_FRAME.pack(isinstance(text, ConfigError), len(body)) + body)
    for fd in fds:
        try:
            # Blocks only until that worker's reader thread makes room.
            sent = 0
            while sent < len(frame):
                sent += os.write(fd, frame[sent:])
        except OSError:  # that worker is gone; the parent notices and logs it
            pass


def _read_exact(fd: int, n: int) -> bytes | None:
    out = b""
    while len(out) < n:
        got = os.read(fd, n - len(out))
        if not got:
            return None
        out += got
    return out


def _follow_parent(exp: Exporter, fd: int) -> None:
    """A worker's reloads: apply each config text the parent sends, until
    the pipe closes (the parent is gone)."""
    try:
        while (head := _read_exact(fd, _FRAME.size)) is not None:
            failed, size = _FRAME.unpack(head)
            body = _read_exact(fd, size)
            if body is None:
                return
            exp.reload(ConfigError(body.decode()) if failed else body.decode())
    finally:
        os.close(fd)


def run_worker(exp: Exporter, parent: int, reloads: int) -> None:
    """A forked worker's life: serve until SIGTERM, Ctrl-C or the parent's
    exit; apply the configs the parent sends on ``reloads``; a SIGHUP here
    asks the parent. Never returns (no caller's cleanup runs twice)."""
    status = 0
    try:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGHUP, lambda *_: _signal(parent, signal.SIGHUP))
        threading.Thread(target=_follow_parent, args=(exp, reloads), daemon=True).start()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        exp.start()
        # The parent passes SIGTERM on; a parent killed outright cannot, so
        # its disappearance stops the worker too.
        while not stop.wait(0.1) and os.getppid() == parent:
            pass
        exp.stop()
    except KeyboardInterrupt:
        exp.stop()
    except BaseException:  # pragma: no cover - logged, the parent sees the status
        log.exception("exporter worker %d failed", os.getpid())
        status = 1
    finally:
        os._exit(status)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:  # already gone (and reaped)
        pass


def stop_workers(children: list[int], within: float = 5.0) -> None:
    """SIGTERM every worker and reap it; one that outlives ``within`` is
    killed, so none is left behind."""
    for pid in children:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + within
    for pid in children:
        while True:
            try:
                done = os.waitpid(pid, os.WNOHANG)[0] == pid
            except ChildProcessError:
                break
            if done:
                break
            if time.monotonic() > deadline:
                _signal(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.01)
