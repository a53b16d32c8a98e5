"""Real peers for the TLS tests and benches: nginx, redis-server (TLS),
memcached, two Python peers (an SSH-style banner and a server that accepts
and never answers), and the machinery the STARTTLS peers of
starttls_daemons.py (postfix, dovecot, postgresql) share.

Each `start_*` function configures its daemon in its own directory, on free
loopback ports, starts it in the foreground (so the PID we hold is the
daemon's), polls a real connect/handshake until it answers, and returns an
object whose `stop()` ends that PID. A port taken between choosing and
binding is retried with new ports. Plain functions, no pytest: the fixtures
in tls_fixtures.py wrap them, and benches/ can call them directly.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from peers import TcpPeer, has_ipv6_loopback

IS_ROOT = os.geteuid() == 0
START_TIMEOUT = 20.0  # a daemon that does not answer by then failed to start
POLL_EVERY = 0.02
ATTEMPTS = 3
SSH_BANNER = b"SSH-2.0-socketkit_test\r\n"


class DaemonError(RuntimeError):
    """A daemon did not come up; the message carries its log."""


def find_binary(name: str) -> str | None:
    """`name` on PATH, else in the places Debian puts daemons and
    PostgreSQL's versioned bin directories (not on PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/lib/postfix/sbin")
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def loopback_hosts(ipv6: bool = True) -> tuple[str, ...]:
    return ("127.0.0.1", "::1") if ipv6 and has_ipv6_loopback() else ("127.0.0.1",)


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n: int, hosts: Iterable[str] = ("127.0.0.1",)) -> list[int]:
    """`n` distinct ports free on every host in `hosts` right now, picked
    below the kernel's ephemeral range: the tests' own listeners (port 0)
    and outgoing connections live in that range, so a test that scans
    around its listener never meets a session daemon, and no outgoing
    connection takes a port before its daemon binds it. Ports are held
    while choosing, so none repeats; the caller retries on a lost race
    (another test run on the machine picking the same port)."""
    hosts = tuple(hosts)
    low = 10000
    high = max(low + 4 * n + 1000, min(_ephemeral_low(), 65536))
    rng = random.SystemRandom()
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            port = rng.randrange(low, high)
            if port in ports:
                continue
            for h in hosts:
                s = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET)
                held.append(s)
                if ":" in h:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    s.bind((h, port))
                except OSError:
                    break
            else:
                ports.append(port)
        return ports
    finally:
        for s in held:
            s.close()


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def insecure_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def world_readable_dir(prefix: str) -> Path:
    """A fresh temp dir other users can enter: postfix, dovecot and
    postgres drop root and must reach their files inside it."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    return d


# ---------------------------------------------------------------- processes


class Daemon:
    """One foreground daemon process we started, logging to a file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        workdir: Path,
        *,
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.stop_signal = stop_signal
        kw: dict = {}
        if user is not None and IS_ROOT:
            pw = pwd.getpwnam(user)
            kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C in the terminal running the tests
                # reaches pytest, which then stops the daemon in order.
                start_new_session=True,
                **kw,
            )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)


def wait_ready(daemon: Daemon, probe: Callable[[], bool], timeout: float = START_TIMEOUT) -> bool:
    """Poll `probe` (a real connect/handshake) until it passes; False once
    the daemon has exited or `timeout` is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemon.alive():
            return False
        try:
            if probe():
                return True
        except OSError:
            pass
        time.sleep(POLL_EVERY)
    return False


def start_with_retry(build: Callable[[], tuple[Daemon, Callable[[], bool]]], what: str) -> Daemon:
    """`build()` picks ports, writes the config and starts the daemon; a
    start that fails (most often: a port taken meanwhile) is retried."""
    logs = []
    for _ in range(ATTEMPTS):
        daemon, probe = build()
        if wait_ready(daemon, probe):
            return daemon
        logs.append(daemon.log_tail())
        daemon.stop()
    raise DaemonError(f"{what} did not start ({' '.join(daemon.argv)}):\n" + "\n---\n".join(logs))


def read_greeting(host: str, port: int, prefix: bytes, *, tls: bool = False, timeout: float = 1.0) -> bool:
    with socket.create_connection((host, port), timeout=timeout) as s:
        if not tls:
            return s.recv(512).startswith(prefix)
        with insecure_context().wrap_socket(s) as t:
            return t.recv(512).startswith(prefix)


def tls_handshake_ok(host: str, port: int, ctx: ssl.SSLContext | None = None, timeout: float = 1.0) -> bool:
    with socket.create_connection((host, port), timeout=timeout) as s:
        with (ctx or insecure_context()).wrap_socket(s):
            return True


@dataclass
class Service:
    """What a `start_*` function returns: the daemon, its ports, and how
    to stop it. `extra` carries service-specific facts (user, password...)."""

    daemon: Daemon
    workdir: Path
    hosts: tuple[str, ...]
    ports: dict[str, int]
    extra: dict[str, object] = field(default_factory=dict)
    owns_workdir: bool = False

    @property
    def host(self) -> str:
        return self.hosts[0]

    @property
    def port(self) -> int:
        return next(iter(self.ports.values()))

    @property
    def pid(self) -> int:
        return self.daemon.pid

    def stop(self) -> None:
        self.daemon.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- nginx


@dataclass(frozen=True)
class TlsSite:
    """One nginx TLS listener: the chain and key it presents; with
    `client_ca`, a client certificate signed by it is required."""

    name: str
    chain: Path
    key: Path
    client_ca: Path | None = None


def _nginx_conf(d: Path, sites: list[tuple[TlsSite, int]], hosts: tuple[str, ...]) -> str:
    servers = []
    for site, port in sites:
        listens = "".join(f"    listen {hostport(h, port)} ssl;\n" for h in hosts)
        client = (
            f"    ssl_verify_client on;\n    ssl_client_certificate {site.client_ca};\n"
            if site.client_ca
            else ""
        )
        # The body names the site and, behind a client check, the client
        # subject nginx saw: a test can tell which listener it reached.
        body = f"{site.name} $ssl_client_s_dn\\n" if site.client_ca else f"{site.name}\\n"
        servers.append(
            "  server {\n"
            f"{listens}"
            f"    ssl_certificate {site.chain};\n"
            f"    ssl_certificate_key {site.key};\n"
            f"{client}"
            f'    location / {{ return 200 "{body}"; }}\n'
            "  }\n"
        )
    n_listen = len(sites) * len(hosts)
    temp = "".join(
        f"  {k}_temp_path {d}/tmp/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        "worker_processes 1;\n"
        f"pid {d}/nginx.pid;\n"
        f"error_log {d}/error.log warn;\n"
        f"worker_rlimit_nofile {2 * n_listen + 4096};\n"
        f"events {{ worker_connections {n_listen + 2048}; }}\n"
        "http {\n"
        "  access_log off;\n"
        "  default_type text/plain;\n"
        f"{temp}"
        f"{''.join(servers)}"
        "}\n"
    )


def start_nginx(
    sites: list[TlsSite], workdir: Path | None = None, *, ipv6: bool = True, nginx: str | None = None
) -> Service:
    """One nginx with a TLS listener per site, each on its own free port on
    127.0.0.1 (and the same port on ::1 with `ipv6`). `ports` maps site
    name to port. Without `workdir` a temp dir is made and removed on stop."""
    binary = nginx or find_binary("nginx")
    if binary is None:
        raise FileNotFoundError("nginx is not installed (apt-get install nginx)")
    owns = workdir is None
    d = world_readable_dir("socketkit-nginx-") if workdir is None else workdir
    d.mkdir(parents=True, exist_ok=True)
    (d / "tmp").mkdir(exist_ok=True)
    hosts = loopback_hosts(ipv6)
    state: dict[str, list[int]] = {}

    def build():
        ports = free_ports(len(sites), hosts)
        state["ports"] = ports
        (d / "nginx.conf").write_text(_nginx_conf(d, list(zip(sites, ports, strict=True)), hosts))
        # -e: the error log from the first line on (before the config is read,
        # nginx would otherwise open its compiled-in /var/log path).
        argv = [binary, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")]
        daemon = Daemon("nginx", [*argv, "-g", "daemon off;"], d, stop_signal=signal.SIGTERM)
        # The master binds every listener before any worker starts: a TLS
        # handshake on the first and last port means all are served.
        edges = {ports[0], ports[-1]}
        return daemon, lambda: all(tls_handshake_ok(h, p) for h in hosts for p in edges)

    daemon = start_with_retry(build, "nginx")
    ports = {s.name: p for s, p in zip(sites, state["ports"], strict=True)}
    return Service(daemon, d, hosts, ports, owns_workdir=owns)


def nginx_tls_ports(
    n: int, cert_file: Path | str, key_file: Path | str, *, workdir: Path | None = None, ipv6: bool = False
) -> Service:
    """One nginx listening on `n` free TLS ports (127.0.0.1), all presenting
    the same certificate: for the many-endpoint tests and benchmarks.
    `.ports` maps "tls0".."tls{n-1}" to ports; `list(svc.ports.values())`."""
    sites = [TlsSite(f"tls{i}", Path(cert_file), Path(key_file)) for i in range(n)]
    return start_nginx(sites, workdir, ipv6=ipv6)


# ---------------------------------------------------------------- redis


def start_redis_tls(
    workdir: Path, cert: Path, key: Path, *, client_ca: Path | None = None, client_cert=None
) -> Service:
    """redis-server with only a TLS port (no plaintext). With `client_ca`,
    `tls-auth-clients yes`: a client must present a certificate signed by
    it (`client_cert` = (cert, key) is what the readiness probe uses)."""
    binary = find_binary("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    hosts = loopback_hosts()
    ctx = insecure_context()
    if client_cert is not None:
        ctx.load_cert_chain(*map(str, client_cert))
    state: dict[str, int] = {}

    def probe() -> bool:
        with socket.create_connection((hosts[0], state["port"]), timeout=1) as s:
            with ctx.wrap_socket(s) as t:
                t.sendall(b"PING\r\n")
                return t.recv(64) == b"+PONG\r\n"

    def build():
        port = free_ports(1, hosts)[0]
        state["port"] = port
        lines = [
            "port 0",
            f"tls-port {port}",
            f"bind {' '.join(hosts)}",
            f"tls-cert-file {cert}",
            f"tls-key-file {key}",
            'save ""',
            "appendonly no",
            f"dir {workdir}",
            "daemonize no",
        ]
        if client_ca is not None:
            lines += ["tls-auth-clients yes", f"tls-ca-cert-file {client_ca}"]
        else:
            lines += ["tls-auth-clients no"]
        (workdir / "redis.conf").write_text("\n".join(lines) + "\n")
        return Daemon("redis", [binary, str(workdir / "redis.conf")], workdir), probe

    daemon = start_with_retry(build, "redis-server --tls-port")
    return Service(daemon, workdir, hosts, {"tls": state["port"]}, {"client_auth": client_ca is not None})


# ---------------------------------------------------------------- memcached


def start_memcached(workdir: Path) -> Service:
    """memcached on a free TCP port on the loopback addresses, no UDP."""
    binary = find_binary("memcached")
    if binary is None:
        raise FileNotFoundError("memcached is not installed (apt-get install memcached)")
    workdir.mkdir(parents=True, exist_ok=True)
    hosts = loopback_hosts()
    state: dict[str, int] = {}

    def probe() -> bool:
        with socket.create_connection((hosts[0], state["port"]), timeout=1) as s:
            s.sendall(b"version\r\n")
            return s.recv(64).startswith(b"VERSION ")

    def build():
        port = free_ports(1, hosts)[0]
        state["port"] = port
        argv = [binary, "-l", ",".join(hosts), "-p", str(port), "-U", "0", "-t", "1", "-m", "16"]
        if IS_ROOT:
            argv += ["-u", "nobody"]  # memcached refuses to run as root
        # SIGKILL: nothing to flush, and SIGTERM costs a second of its clock tick.
        return Daemon("memcached", argv, workdir, stop_signal=signal.SIGKILL), probe

    daemon = start_with_retry(build, "memcached")
    return Service(daemon, workdir, hosts, {"memcached": state["port"]})


# ---------------------------------------------------------------- Python peers


def _banner_handler(conn: socket.socket) -> None:
    # A client may leave before (or without) reading: a port check, a scan.
    with contextlib.suppress(ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        conn.sendall(SSH_BANNER)
        # Then read (and drop) whatever the client says until it leaves, as
        # an SSH server waits for the client's identification.
        while conn.recv(4096):
            pass


def _stalled_handler(conn: socket.socket) -> None:
    # Accept, never answer: a TLS ClientHello sits unread until the client
    # gives up (or the peer is stopped).
    with contextlib.suppress(ConnectionResetError, ConnectionAbortedError):
        while conn.recv(4096):
            pass


def banner_server(host: str = "127.0.0.1") -> TcpPeer:
    """Sends SSH_BANNER on every connection. `.address`, `.stop()`."""
    return TcpPeer(_banner_handler, host)


def stalled_server(host: str = "127.0.0.1") -> TcpPeer:
    """Accepts and never sends a byte. `.address`, `.stop()`."""
    return TcpPeer(_stalled_handler, host)
