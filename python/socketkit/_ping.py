"""One tcping probe (``PingProbe``) and what a run of them says over time:
up and down periods, the longest streaks, address changes. ``PingStats``
(in ``results``) reports these; they live here to keep that module small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from socketkit._format import round_floats

__all__ = ["PingProbe", "Streak", "address_changes", "longest", "periods", "streak_dict"]

#: A streak: (start, end, seconds), start and end in Unix time.
Streak = tuple[float, float, float]


class PingProbe(NamedTuple):
    """One ping of :func:`socketkit.tcping_iter`.

    ``seq`` (1 for the first), ``time`` (Unix time the ping started, as
    ``time.time()``), ``state`` (``"open"`` when the handshake completed,
    else ``"closed"``, ``"filtered"`` or ``"error"``, as ``check`` reports
    them), ``address`` (the IP pinged; ``None`` while the name does not
    resolve), ``rtt_ms`` (handshake time in ms, ``None`` if none) and
    ``error`` (why the ping failed, ``None`` when it connected).
    """

    seq: int
    time: float
    state: Literal["open", "closed", "filtered", "error"]
    address: str | None
    rtt_ms: float | None
    error: str | None

    @property
    def ok(self) -> bool:
        """True when the handshake completed."""
        return self.state == "open"

    def to_dict(self) -> dict[str, Any]:
        """The fields, and ``ok``, as a dict (floats rounded as every export)."""
        d: dict[str, Any] = round_floats({**self._asdict(), "ok": self.ok})
        return d


def periods(probes: Sequence[PingProbe], end: float | None) -> list[tuple[bool, float, float]]:
    """Runs of pings that all connected (True) or all failed, as
    ``(up, start, end)``: a ping stands for the time from its start to the
    next ping's start; the last one until ``end`` (the run's end)."""
    out: list[tuple[bool, float, float]] = []
    for i, p in enumerate(probes):
        until = probes[i + 1].time if i + 1 < len(probes) else max(end or p.time, p.time)
        if out and out[-1][0] == p.ok:
            out[-1] = (p.ok, out[-1][1], until)
        else:
            out.append((p.ok, p.time, until))
    return out


def longest(runs: list[tuple[bool, float, float]], up: bool) -> Streak | None:
    """The longest run of one kind (the first, on ties), or ``None``."""
    best: Streak | None = None
    for u, start, stop in runs:
        if u == up and (best is None or stop - start > best[2]):
            best = (start, stop, stop - start)
    return best


def address_changes(probes: Sequence[PingProbe]) -> list[tuple[float, str, str]]:
    """``(time, old, new)`` for each ping whose address differs from the
    last address pinged (re-resolution found another one)."""
    out: list[tuple[float, str, str]] = []
    last: str | None = None
    for p in probes:
        if p.address is None:
            continue
        if last is not None and p.address != last:
            out.append((p.time, last, p.address))
        last = p.address
    return out


def streak_dict(s: Streak | None) -> dict[str, float] | None:
    """A streak for JSON: ``{start, end, seconds}``."""
    return None if s is None else {"start": s[0], "end": s[1], "seconds": s[2]}
