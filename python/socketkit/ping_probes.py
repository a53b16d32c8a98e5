"""tcping as a run (:func:`tcping`, a :class:`PingStats`) and as a stream
(:func:`tcping_iter`, a :class:`PingProbe` per ping), both on the core's
timed ping stream. Re-exported by ``socketkit.probes`` and ``socketkit``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from socketkit import _core, _probe_core
from socketkit.results import PingProbe, PingStats

__all__ = ["ping_stats", "tcping", "tcping_iter"]

Target = str | tuple[str, int]
Family = str | None
Source = tuple[str, int] | str | None
_D = _core.DEFAULTS


def _pings(raw: _probe_core.PingStream) -> Iterator[tuple[str, int, PingProbe]]:
    try:
        for seq, t, host, address, port, state, rtt_ms, error in raw:
            yield host, port, PingProbe(seq, t, state, address, rtt_ms, error)  # type: ignore[arg-type]
    finally:
        raw.close()


def tcping(
    target: Target,
    port: int | None = None,
    *,
    count: int | None = _D["ping_count"],
    interval: float = _D["ping_interval"],
    timeout: float = _D["ping_timeout"],
    deadline: float | None = None,
    resolve_every: int | None = None,
    family: Family = None,
    source_address: Source = None,
) -> PingStats:
    """Ping with TCP handshakes: ``count`` connects, one every ``interval``
    seconds (start to start), each timed from ``connect()`` to the
    handshake's end; a refused or timed-out connect is a lost ping.
    Returns :class:`PingStats`. A name is pinged on the first of its
    addresses that accepts (else its first address). Raises
    :class:`socketkit.ResolveError` if the name does not resolve at the
    first ping.

    ``count=None`` pings until Ctrl-C or ``deadline``: as ``ping`` does,
    Ctrl-C then ends the run and the statistics so far are returned (no
    ``KeyboardInterrupt``; with a ``count``, Ctrl-C raises it as usual).
    ``deadline`` (seconds) starts no ping after that time, whatever
    ``count`` says. ``resolve_every=N`` resolves the name again after N
    failed pings in a row, so a service that moved to another address is
    found (``PingStats.address_changes`` lists the moves).
    """
    raw = _probe_core._tcping_stream(
        target,
        port,
        count=count,
        interval=interval,
        timeout=timeout,
        deadline=deadline,
        resolve_every=resolve_every,
        family=family,
        source_address=source_address,
    )
    probes: list[PingProbe] = []
    where = ("", 0)
    try:
        for host, port_, p in _pings(raw):
            where = (host, port_)
            probes.append(p)
    except KeyboardInterrupt:
        if count is not None or not probes:
            raise
    return ping_stats(*where, probes, time.time())


def ping_stats(host: str, port: int, probes: list[PingProbe], end: float | None) -> PingStats:
    """The :class:`PingStats` of a run of pings."""
    address = next((p.address for p in probes if p.address is not None), "")
    return PingStats(
        host,
        address,
        port,
        [p.rtt_ms if p.ok else None for p in probes],
        [None if p.ok else (p.error or p.state) for p in probes],
        probes=probes,
        end=end,
    )


def tcping_iter(
    target: Target,
    port: int | None = None,
    *,
    count: int | None = None,
    interval: float = _D["ping_interval"],
    timeout: float = _D["ping_timeout"],
    deadline: float | None = None,
    resolve_every: int | None = None,
    family: Family = None,
    source_address: Source = None,
) -> Iterator[PingProbe]:
    """:func:`tcping` as a stream: yields each :class:`PingProbe` as it is
    made, for monitoring loops and logs. Runs until ``count`` pings (by
    default forever), ``deadline`` seconds, or the iterator is closed;
    closing it from another thread ends a ping under way within 100 ms.
    Arguments are checked at the call; a name that does not resolve at the
    first ping raises :class:`socketkit.ResolveError` from the first
    ``next()``, later failures to resolve are pings with state ``"error"``.
    """
    raw = _probe_core._tcping_stream(
        target,
        port,
        count=count,
        interval=interval,
        timeout=timeout,
        deadline=deadline,
        resolve_every=resolve_every,
        family=family,
        source_address=source_address,
    )
    return (p for _h, _p, p in _pings(raw))
