"""``socketkit.exporter``: a Prometheus exporter compatible with
blackbox_exporter.

``GET /probe?target=HOST:PORT&module=NAME`` probes the target as the
module says and answers Prometheus text exposition (made with the official
``prometheus_client``) with blackbox_exporter's metric names; ``GET
/metrics`` gives the exporter's own metrics. Modules come from a YAML file
in blackbox_exporter's layout, so an existing ``blackbox.yml`` tcp module
works unchanged; socketkit adds the ``udp`` prober (``payload``,
``expect``) and the ``tcping`` prober (``count``, ``interval``,
``buckets``: min/avg/max/stdev, loss and a latency histogram).

``&debug=true`` answers what blackbox_exporter's does: the probe's log
lines (its messages, in its logfmt), the metrics and the module, as
text/plain. TLS probes add ``probe_tls_cipher_info{cipher="TLS_..."}``
(the IANA name) beside ``probe_tls_version_info``.

A probe's timeout is the scrape timeout Prometheus sends
(``X-Prometheus-Scrape-Timeout-Seconds``) less 0.5 s, capped by the
module's ``timeout``. Bad query parameters get HTTP 400 with the reason.

Needs the ``exporter`` extra: ``pip install 'socketkit[exporter]'``
(prometheus_client and PyYAML).

>>> from socketkit import exporter
``serve(..., workers=N)`` (the CLI's ``--workers``, the CPU count by
default) runs N processes on the one port; see ``socketkit.exporter.server``.

>>> exporter.serve("blackbox.yml", "127.0.0.1:9115")  # until SIGTERM
"""

from __future__ import annotations

import importlib.util

_missing = [m for m in ("prometheus_client", "yaml") if importlib.util.find_spec(m) is None]
if _missing:  # pragma: no cover - the extra is not installed
    raise ImportError(
        f"socketkit.exporter needs the 'exporter' extra: pip install 'socketkit[exporter]' "
        f"(missing: {', '.join(_missing)})"
    )

from socketkit.exporter.config import Config, ConfigError, Module, load_config, parse_config  # noqa: E402
from socketkit.exporter.probers import ProbeLog, run_probe  # noqa: E402
from socketkit.exporter.server import DEFAULT_ADDRESS, Exporter, serve  # noqa: E402
from socketkit.exporter.workers import default_workers  # noqa: E402

__all__ = [
    "DEFAULT_ADDRESS",
    "Config",
    "ConfigError",
    "Exporter",
    "Module",
    "ProbeLog",
    "default_workers",
    "load_config",
    "parse_config",
    "run_probe",
    "serve",
]
