"""The STARTTLS peers of daemons.py: postfix (SMTP), dovecot (IMAP, POP3)
and postgresql (SSLRequest), each as its own isolated instance configured
in a directory of ours, on free loopback ports. Same pattern and `Service`
result as daemons.py; plain functions, usable from benches/ too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

from daemons import (
    IS_ROOT,
    Daemon,
    DaemonError,
    Service,
    find_binary,
    free_ports,
    hostport,
    insecure_context,
    loopback_hosts,
    read_greeting,
    start_with_retry,
)

# ---------------------------------------------------------------- postfix

# Only what an SMTP listener needs; every service runs unchrooted ("n") so
# nothing depends on a chroot jail under the queue directory.
_POSTFIX_MASTER = """\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
local     unix  - n n -  - local
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def start_postfix(workdir: Path, cert: Path, key: Path) -> Service:
    """postfix as its own instance: config in workdir/etc, queue and data in
    workdir, log in workdir/maillog. `ports["smtp"]` offers STARTTLS,
    `ports["smtps"]` is implicit TLS (wrapper mode). Needs root (the master
    daemon does)."""
    postfix = find_binary("postfix")
    master = shutil.which("master", path="/usr/lib/postfix/sbin")
    if postfix is None or master is None:
        raise FileNotFoundError("postfix is not installed (apt-get install postfix)")
    if not IS_ROOT:
        raise PermissionError("postfix's master daemon must run as root")
    etc, spool, data = workdir / "etc", workdir / "spool", workdir / "data"
    for p in (etc, spool, data):
        p.mkdir(parents=True, exist_ok=True)
    shutil.chown(data, user="postfix")
    hosts = loopback_hosts()
    state: dict[str, int] = {}

    def build():
        smtp, smtps = free_ports(2, hosts)
        state.update(smtp=smtp, smtps=smtps)
        (etc / "main.cf").write_text(
            "compatibility_level = 3.6\n"
            f"queue_directory = {spool}\n"
            f"data_directory = {data}\n"
            f"maillog_file_prefixes = {workdir}\n"
            f"maillog_file = {workdir}/maillog\n"
            "myhostname = localhost\n"
            "mydomain = localdomain\n"
            "mydestination =\n"
            "alias_maps =\n"
            "alias_database =\n"
            "inet_interfaces = loopback-only\n"
            f"inet_protocols = {'all' if len(hosts) > 1 else 'ipv4'}\n"
            f"smtpd_tls_cert_file = {cert}\n"
            f"smtpd_tls_key_file = {key}\n"
            "smtpd_tls_security_level = may\n"
            "smtpd_banner = $myhostname ESMTP socketkit-test\n"
        )
        listeners = "".join(
            f"{hostport(h, smtp)} inet n - n - - smtpd\n"
            f"{hostport(h, smtps)} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n"
            for h in hosts
        )
        (etc / "master.cf").write_text(listeners + _POSTFIX_MASTER)
        # postfix re-reads a config file whose mtime is this very second
        # (it might still be being written), 0.3 s apart, for up to 2 s.
        past = time.time() - 10
        for f in ("main.cf", "master.cf"):
            os.utime(etc / f, (past, past))
        # `postfix check` creates the queue directories with the owners and
        # modes this postfix version wants.
        subprocess.run(
            [postfix, "-c", str(etc), "check"], check=True, capture_output=True, stdin=subprocess.DEVNULL
        )
        daemon = Daemon("postfix-master", [master, "-c", str(etc), "-d"], workdir)

        def probe() -> bool:
            return read_greeting(hosts[0], smtp, b"220 ") and read_greeting(
                hosts[0], smtps, b"220 ", tls=True
            )

        return daemon, probe

    daemon = start_with_retry(build, "postfix")
    return Service(daemon, workdir, hosts, dict(state), {"maillog": workdir / "maillog"})


# ---------------------------------------------------------------- dovecot


def start_dovecot(workdir: Path, cert: Path, key: Path) -> Service:
    """dovecot with its own config file: IMAP and POP3 with STARTTLS
    (`ports["imap"]`, `ports["pop3"]`) and implicit TLS (`"imaps"`,
    `"pop3s"`). Any user logs in with password "secret" (static passdb;
    mail under workdir/home as `nobody`)."""
    binary = find_binary("dovecot")
    if binary is None:
        raise FileNotFoundError("dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d)")
    if not IS_ROOT:
        raise PermissionError("dovecot's master must run as root to start its login processes")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    if not version.startswith("2.3."):
        # 2.4 (Debian 13) renamed most settings (ssl_server_cert_file, ...).
        raise DaemonError(f"the dovecot fixture writes a 2.3 config; this is dovecot {version.strip()}")
    run, state_dir, home = workdir / "run", workdir / "state", workdir / "home"
    for p in (run, state_dir, home):
        p.mkdir(parents=True, exist_ok=True)
    shutil.chown(home, user="nobody")
    hosts = loopback_hosts()
    conf = workdir / "dovecot.conf"
    state: dict[str, int] = {}

    def build():
        names = ("imap", "imaps", "pop3", "pop3s")
        state.update(zip(names, free_ports(4, hosts), strict=True))
        conf.write_text(
            "protocols = imap pop3\n"
            f"listen = {', '.join(hosts)}\n"
            f"base_dir = {run}\n"
            f"state_dir = {state_dir}\n"
            "instance_name = socketkit-test\n"
            f"log_path = {workdir}/dovecot.log\n"
            "ssl = yes\n"
            f"ssl_cert = <{cert}\n"
            f"ssl_key = <{key}\n"
            "default_internal_user = dovecot\n"
            "default_login_user = dovenull\n"
            "mail_location = maildir:~/Maildir\n"
            "passdb {\n  driver = static\n  args = password=secret\n}\n"
            f"userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={home}/%u\n}}\n"
            "service imap-login {\n"
            f"  inet_listener imap {{\n    port = {state['imap']}\n  }}\n"
            f"  inet_listener imaps {{\n    port = {state['imaps']}\n    ssl = yes\n  }}\n"
            "}\n"
            "service pop3-login {\n"
            f"  inet_listener pop3 {{\n    port = {state['pop3']}\n  }}\n"
            f"  inet_listener pop3s {{\n    port = {state['pop3s']}\n    ssl = yes\n  }}\n"
            "}\n"
        )
        daemon = Daemon("dovecot", [binary, "-F", "-c", str(conf)], workdir)

        def probe() -> bool:
            h = hosts[0]
            return (
                read_greeting(h, state["imap"], b"* OK")
                and read_greeting(h, state["pop3"], b"+OK")
                and read_greeting(h, state["imaps"], b"* OK", tls=True)
                and read_greeting(h, state["pop3s"], b"+OK", tls=True)
            )

        return daemon, probe

    daemon = start_with_retry(build, "dovecot")
    return Service(daemon, workdir, hosts, dict(state), {"user": "alice", "password": "secret"})


# ---------------------------------------------------------------- postgresql

SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def pg_ssl_request(host: str, port: int, timeout: float = 1.0) -> tuple[socket.socket, bytes]:
    """Connect and send PostgreSQL's SSLRequest; returns the socket and the
    one-byte answer (b"S": go on with a TLS handshake)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(SSL_REQUEST)
        return s, s.recv(1)
    except BaseException:
        s.close()
        raise


def _pg_ready(host: str, port: int) -> bool:
    """SSLRequest, TLS, then a startup message: ready once the server says
    AuthenticationOk instead of "the database system is starting up"."""
    s, answer = pg_ssl_request(host, port)
    with s:
        if answer != b"S":
            return False
        with insecure_context().wrap_socket(s) as t:
            params = b"user\0postgres\0database\0postgres\0\0"
            t.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
            head = t.recv(9)
            return head[:1] == b"R" and head[5:9] == b"\0\0\0\0"


def start_postgres(workdir: Path, cert: Path, key: Path) -> Service:
    """A fresh cluster (initdb, trust auth, user "postgres") in workdir with
    `ssl=on` and the given certificate, on a free port on 127.0.0.1 (and
    ::1). Run as the `postgres` user when we are root (postgres refuses
    root)."""
    initdb, postgres = find_binary("initdb"), find_binary("postgres")
    if initdb is None or postgres is None:
        raise FileNotFoundError("postgresql is not installed (apt-get install postgresql)")
    user = "postgres" if IS_ROOT else None
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    # The server reads its key as itself and refuses a key others can read.
    shutil.copy(cert, workdir / "server.crt")
    shutil.copy(key, workdir / "server.key")
    (workdir / "server.key").chmod(0o600)
    if user:
        for p in (workdir, workdir / "server.crt", workdir / "server.key"):
            shutil.chown(p, user=user, group=user)
    init = Daemon(
        "initdb",
        [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
        workdir,
        user=user,
    )
    if init.proc.wait(120) != 0:
        raise DaemonError(f"initdb failed:\n{init.log_tail()}")
    hosts = loopback_hosts()
    state: dict[str, int] = {}

    def build():
        port = free_ports(1, hosts)[0]
        state["port"] = port
        settings = {
            "listen_addresses": ",".join(hosts),
            "unix_socket_directories": str(workdir),
            "ssl": "on",
            "ssl_cert_file": str(workdir / "server.crt"),
            "ssl_key_file": str(workdir / "server.key"),
            "fsync": "off",
            "max_connections": "50",
        }
        argv = [postgres, "-D", str(data), "-p", str(port)]
        for k, v in settings.items():
            argv += ["-c", f"{k}={v}"]
        # SIGINT is the fast shutdown; SIGTERM would wait for clients.
        daemon = Daemon("postgres", argv, workdir, stop_signal=signal.SIGINT, user=user)
        return daemon, lambda: _pg_ready(hosts[0], port)

    daemon = start_with_retry(build, "postgres")
    return Service(daemon, workdir, hosts, {"postgres": state["port"]}, {"user": "postgres"})
