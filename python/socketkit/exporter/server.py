"""The exporter's HTTP side: ``GET /probe?target=HOST:PORT&module=NAME``
(blackbox_exporter's; ``&debug=true`` answers the probe's log lines, the
metrics and the module as text/plain, as blackbox_exporter does), ``GET
/metrics`` (its own), ``/-/healthy``,
``POST /-/reload``; config reload on SIGHUP (a broken file keeps the
configuration in force), a clean stop on SIGTERM.

Workers: ``serve(workers=N)`` (``socketkit exporter --workers N``, the CPU
count by default there) binds the port once, loads the config, then forks
N-1 copies of itself that accept on the same listening socket, so probes
use every core (one Python process is held to one by the GIL). The first
process stays the parent: a reload (SIGHUP to any of the processes, or
``POST /-/reload`` to any) is the parent's: it reads the file once and
hands every worker the same text over a pipe, so all apply the same
configuration however the file changes meanwhile; SIGTERM is passed on and the
parent returns only once every worker has exited; a worker whose parent
is gone stops by itself. The exporter's own counters
(``socketkit_exporter_probes_total``, ``..._bad_requests_total``) live in
memory shared by all workers, so ``/metrics`` from whichever worker answers
counts every worker's requests; the config gauges are each worker's (all
apply the same text), the process_/python_ metrics are the answering
worker's."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from prometheus_client.core import CounterMetricFamily

from socketkit import _probe_core
from socketkit.exporter import http
from socketkit.exporter.config import (
    BLACKBOX_ONLY,
    DEFAULT_CONFIG,
    Config,
    ConfigError,
    config_from_text,
    load_config,
    parse_config,
    read_config_text,
)
from socketkit.exporter.http import Request, Response
from socketkit.exporter.probers import ProbeLog, probe, run_sync
from socketkit.exporter.workers import SIGNALS, SharedCounters, run_worker, send_config, stop_workers

__all__ = ["DEFAULT_ADDRESS", "Exporter", "parse_address", "serve"]

log = logging.getLogger("socketkit.exporter")

DEFAULT_ADDRESS = "127.0.0.1:9115"
#: blackbox_exporter's --timeout-offset: time left for the scrape itself.
TIMEOUT_OFFSET = 0.5
#: Without the scrape-timeout header (a probe by hand), as blackbox.
DEFAULT_SCRAPE_TIMEOUT = 120.0


class BadRequest(Exception):
    """A /probe request that cannot run: HTTP 400 with this reason."""


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (127.0.0.1) to bind."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address must be HOST:PORT, got {text!r}")
    return (host.strip("[]") or "127.0.0.1", int(port))


def probe_timeout(module_timeout: float | None, header: str | None) -> float:
    """blackbox_exporter's rule: the scrape timeout less the offset, capped
    by the module's timeout."""
    scrape = DEFAULT_SCRAPE_TIMEOUT
    if header is not None:
        try:
            scrape = float(header)
        except ValueError:
            raise BadRequest(f"X-Prometheus-Scrape-Timeout-Seconds is not a number: {header!r}") from None
        if not math.isfinite(scrape) or scrape <= 0:
            raise BadRequest(f"X-Prometheus-Scrape-Timeout-Seconds must be positive, got {header!r}")
    timeout = max(scrape - TIMEOUT_OFFSET, min(scrape, TIMEOUT_OFFSET))
    if module_timeout is not None:
        timeout = min(timeout, module_timeout)
    return timeout


def is_debug(query: Mapping[str, list[str]]) -> bool:
    """blackbox_exporter's test: the first ``debug`` value is ``true``
    (any other value is a normal probe, not an error)."""
    return (query.get("debug") or [""])[0] == "true"


def debug_output(lines: list[str], exposition: bytes, module: Mapping[str, Any]) -> bytes:
    """blackbox_exporter's DebugOutput: three sections in its words."""
    import yaml  # type: ignore[import-untyped,unused-ignore]

    head = "Logs for the probe:\n" + "".join(f"{line}\n" for line in lines)
    body = "\n\n\nMetrics that would have been returned:\n"
    tail = "\n\n\nModule configuration:\n" + yaml.safe_dump(dict(module), sort_keys=False)
    return head.encode() + body.encode() + exposition + tail.encode()


class _CountersCollector:
    """The shared counters as the exposition's counters."""

    def __init__(self, counters: SharedCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterator[CounterMetricFamily]:
        probes = CounterMetricFamily(
            "socketkit_exporter_probes", "Probes run, by module and result", labels=["module", "result"]
        )
        bad = CounterMetricFamily("socketkit_exporter_bad_requests", "Requests answered with HTTP 400")
        bad_n = 0
        for key, n in self.counters.items():
            if key[0] == "probe" and len(key) == 3:
                probes.add_metric([key[1], key[2]], n)
            elif key == ("bad_request",):
                bad_n = n
        bad.add_metric([], bad_n)
        yield probes
        yield bad


class _Metrics:
    """The exporter's own metrics (/metrics), in a registry of its own so
    that several exporters can run in one process (the tests do)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        process_collector.ProcessCollector(registry=r)
        platform_collector.PlatformCollector(registry=r)
        gc_collector.GCCollector(registry=r)
        self.counters = SharedCounters()
        r.register(_CountersCollector(self.counters))  # type: ignore[arg-type]
        self.reload_ok = Gauge(
            "socketkit_exporter_config_last_reload_successful",
            "Whether the last configuration reload worked",
            registry=r,
        )
        self.reload_time = Gauge(
            "socketkit_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded",
            registry=r,
        )
        self.modules = Gauge("socketkit_exporter_modules", "Modules configured", registry=r)


class Exporter:
    """A blackbox_exporter-compatible exporter. ``config``: a YAML file's
    path (reloadable), a dict in the same layout, or ``None`` for the
    built-in modules. ``start()`` serves on a background thread; ``serve``
    (module level) is the blocking form with signal handling."""

    def __init__(
        self, config: str | Path | Mapping[str, Any] | None = None, address: str = DEFAULT_ADDRESS
    ) -> None:
        self.path = Path(config) if isinstance(config, str | Path) else None
        self.metrics = _Metrics()
        self.config = self._load(config)
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set_to_current_time()
        self.sock = _listen(parse_address(address))
        #: With workers: each process's connection count, so they share them out.
        self.balance = http.Balance()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        #: With workers: the parent's pid, whose SIGHUP reloads them all.
        self.leader: int | None = None

    def _load(self, config: str | Path | Mapping[str, Any] | None) -> Config:
        if config is None:
            cfg = parse_config(DEFAULT_CONFIG, "<built-in>")
        elif isinstance(config, str | Path):
            cfg = load_config(config)
        else:
            cfg = parse_config(config)
        self.metrics.modules.set(len(cfg.modules))
        return cfg

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the port the system picked for port 0)."""
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def reload(self, text: str | ConfigError | None = None) -> bool:
        """Read the config file again (or take ``text``: its contents as the
        workers' parent read them, or why it could not); a broken one keeps
        the old config (logged, socketkit_exporter_config_last_reload_successful 0)."""
        if self.path is None:
            return True
        try:
            if isinstance(text, ConfigError):
                raise text
            cfg = load_config(self.path) if text is None else config_from_text(text, str(self.path))
        except ConfigError as e:
            log.error("config reload failed, keeping the old one: %s", e)
            self.metrics.reload_ok.set(0)
            return False
        self.config = cfg
        self.metrics.modules.set(len(cfg.modules))
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set_to_current_time()
        log.info("config reloaded from %s", self.path)
        return True

    def probe(self, query: Mapping[str, list[str]], scrape_timeout: str | None) -> bytes:
        """One /probe: its exposition (with ``debug=true``, blackbox's debug
        text: the probe's log, the metrics, the module), or BadRequest.
        Blocking; the server awaits ``probe_async``."""
        return run_sync(self.probe_async(query, scrape_timeout))

    async def probe_async(self, query: Mapping[str, list[str]], scrape_timeout: str | None) -> bytes:
        """``probe`` as a coroutine."""
        target = (query.get("target") or [""])[-1]
        if not target:
            raise BadRequest("Target parameter is missing")
        name = (query.get("module") or ["http_2xx"])[-1]
        module = self.config.modules.get(name)
        if module is None:
            raise BadRequest(f"Unknown module {name!r}")
        if module.prober in BLACKBOX_ONLY:
            raise BadRequest(f"Module {name!r}: prober {module.prober!r} is not supported by socketkit")
        try:
            host, port = _probe_core._parse_target(target)
        except (ValueError, TypeError) as e:
            raise BadRequest(f"Bad target {target!r}: {e}") from None
        timeout = probe_timeout(module.timeout, scrape_timeout)
        debug = is_debug(query)
        plog = ProbeLog(name, target, keep=debug)
        registry, ok, why = await probe(module, host, port, timeout, log=plog)
        self.metrics.counters.inc("probe", name, "success" if ok else "failure")
        if not ok:
            log.info("probe %s of %s failed: %s", name, target, why)
        if debug:
            return debug_output(plog.lines or [], generate_latest(registry), module.describe())
        return generate_latest(registry)

    def start(self) -> Exporter:
        """Serve on a thread of its own (its event loop); returns once it accepts."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="socketkit-exporter")
        self._thread.start()
        ready.wait()
        return self

    def _run(self, ready: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await http.serve(self.sock, self.handle, self._stop, ready.set, self.balance)

        try:
            asyncio.run(main())
        finally:
            ready.set()  # also when it failed to start

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop has ended already
                pass
        if self._thread is not None:
            self._thread.join()
        self.sock.close()

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    async def handle(self, req: Request) -> Response:
        """One request's answer (the routes of blackbox_exporter's)."""
        path, _, qs = req.target.partition("?")
        if not path.startswith("/"):  # absolute-form (a proxy's): its path
            url = urlsplit(req.target)
            path, qs = url.path, url.query
        if req.method in ("GET", "HEAD"):
            return await self._get(path, qs, req)
        if req.method == "POST":
            if path != "/-/reload":
                return Response(405, b"Method not allowed\n", headers=[("Allow", "GET, HEAD")])
            if self.leader is not None:
                # The answer says whether this process could load the file;
                # the parent then has every process apply the same text.
                os.kill(self.leader, signal.SIGHUP)
            # Reading and parsing the file would hold up every other connection.
            if await asyncio.get_running_loop().run_in_executor(None, self.reload):
                return Response(200, b"Reloaded\n")
            return Response(500, b"Reload failed: the old configuration stays\n")
        return Response(405, b"Method not allowed\n", headers=[("Allow", "GET, HEAD, POST")])

    async def _get(self, path: str, qs: str, req: Request) -> Response:
        if path == "/probe":
            query = parse_qs(qs, keep_blank_values=True)
            try:
                body = await self.probe_async(query, req.headers.get("x-prometheus-scrape-timeout-seconds"))
            except BadRequest as e:
                self.metrics.counters.inc("bad_request")
                return Response(400, f"{e}\n".encode())
            return Response(200, body, "text/plain" if is_debug(query) else CONTENT_TYPE_LATEST)
        if path == "/metrics":
            return Response(200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST)
        if path == "/-/healthy":
            return Response(200, b"Healthy\n")
        if path == "/":
            mods = "".join(f"<li>{m}</li>" for m in sorted(self.config.modules))
            page = (
                "<html><head><title>socketkit exporter</title></head><body>"
                "<h1>socketkit exporter</h1><p>blackbox_exporter-compatible: "
                '<a href="/probe?target=127.0.0.1:22&amp;module=tcp_connect">/probe?target=HOST:PORT'
                '&amp;module=NAME</a>, <a href="/metrics">/metrics</a></p>'
                f"<p>Modules:</p><ul>{mods}</ul></body></html>"
            )
            return Response(200, page.encode(), "text/html; charset=utf-8")
        return Response(404, b"Not found\n")


def _listen(addr: tuple[str, int]) -> socket.socket:
    host, port = addr
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Bursts of concurrent scrapes wait in the backlog, not fail.
    return socket.create_server((host, port), family=family, backlog=1024)


def serve(
    config: str | Path | Mapping[str, Any] | None = None,
    address: str = DEFAULT_ADDRESS,
    *,
    on_ready: Callable[[Exporter], object] | None = None,
    workers: int = 1,
) -> None:
    """Run the exporter in the foreground until SIGTERM (returns) or
    Ctrl-C (raises KeyboardInterrupt after stopping); SIGHUP reloads the
    config file. Signal handlers are installed only from the main thread.
    ``on_ready(exporter)`` is called once it listens. ``workers`` > 1 forks
    that many processes in all on the one listening socket (see the module
    docstring; needs the main thread, as SIGTERM and SIGHUP are passed on
    from its handlers). Raises ConfigError for a bad configuration, OSError
    when the address cannot be bound, ValueError for ``workers`` < 1."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers!r}")
    main = threading.current_thread() is threading.main_thread()
    if workers > 1 and not main:
        raise ValueError(f"workers={workers} needs the main thread (it handles SIGTERM and SIGHUP)")
    exp = Exporter(config, address)
    children: list[int] = []
    pipes: list[int] = []  # write ends, one per worker: its reloads
    if workers > 1:
        # Signals wait until each side has its own handlers.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        # Every process blocks in accept on the one socket and the kernel
        # hands each connection to the one that has waited longest (http.serve).
        parent = exp.leader = os.getpid()
        exp.balance = http.Balance(workers)
        try:
            for i in range(1, workers):
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    exp.balance.me = i
                    for fd in (*pipes, w):
                        os.close(fd)
                    run_worker(exp, parent, r)
                os.close(r)
                pipes.append(w)
                children.append(pid)
        except BaseException:
            stop_workers(children)
            for fd in pipes:
                os.close(fd)
            exp.sock.close()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
            raise
    exp.start()
    stop = threading.Event()
    old: dict[int, Any] = {}

    reloading = threading.Lock()  # one reload at a time: frames in order

    def reload_all() -> None:
        with reloading:
            if exp.path is None:
                return
            try:
                text: str | ConfigError = read_config_text(exp.path)
            except ConfigError as e:
                text = e
            send_config(pipes, text)
            exp.reload(text)

    def hup(*_: object) -> None:
        threading.Thread(target=reload_all, daemon=True).start()

    if main:
        old[signal.SIGTERM] = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        old[signal.SIGHUP] = signal.signal(signal.SIGHUP, hup)
    if workers > 1:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
    host, port = exp.address
    log.info("listening on %s:%d (%d worker%s)", host, port, workers, "" if workers == 1 else "s")
    try:
        if on_ready is not None:
            on_ready(exp)
        while not stop.wait(0.1):
            for pid in list(children):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    log.error("exporter worker %d exited; %d left", pid, len(children) - 1)
                    children.remove(pid)
    finally:
        stop_workers(children)
        for fd in pipes:
            os.close(fd)
        exp.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
