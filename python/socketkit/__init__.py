"""socketkit: TCP and UDP clients and servers, and network probes, for
Python scripts and notebooks, with a Rust core.

The names follow the stdlib's socket examples (``connect``, ``send``,
``sendall``, ``recv``, ``sendto``, ``recvfrom``, ``close``); everything the
stdlib leaves to the caller (partial reads, framing, timeouts that cover
name resolution, Happy Eyeballs, Ctrl-C during a blocking call, fd leaks) is
done once, in Rust.

How socketkit treats the interpreter:

* GIL: every call that can block releases the GIL for its whole duration,
  so other Python threads keep running.
* Signals: blocking calls wait in slices of at most 100 ms and run Python's
  signal handlers between slices, so Ctrl-C (or Jupyter's "interrupt
  kernel") raises ``KeyboardInterrupt`` within about 100 ms, whichever thread
  the signal landed on. As with the stdlib, only the main thread sees it.
* Threads: objects may be shared between threads. One thread may read while
  another writes; ``close()`` from any thread wakes a call blocked in
  another. Name resolution runs on a short-lived helper thread so a silent
  resolver cannot hold a call past its timeout; that thread ends by itself
  when the system resolver gives up.
* Probes (``check_many``, ``scan``, ...) run on a few worker threads that
  live for one call (or one ``*_iter`` iterator) and exit when it ends or
  is cancelled; a scan raises the soft open-file limit to the hard one once.
* Servers: ``TcpServer`` and ``UdpServer`` run their own threads (an accept
  thread and a thread per connection in handler mode, an event loop of
  two threads that also call ``on_message``); each attaches to the
  interpreter once and takes the GIL only to call your handler.
  ``stop()`` joins them; Ctrl-C in ``serve_forever()`` stops the server,
  then raises ``KeyboardInterrupt``. Stop servers before the interpreter
  exits.
* fork: apart from running servers, socketkit starts no long-lived
  threads, so a forked child (``multiprocessing``) can use socketkit
  objects it creates itself. A server's threads do not exist in a forked
  child: fork before starting servers, or make new ones in the child.
  Sockets inherited across fork are shared with the parent, as with the
  stdlib.
* TLS: ``TcpClient(address, tls=True | TlsConfig(...))`` speaks TLS
  (rustls, in Rust) with the same GIL, Ctrl-C and thread behaviour as plain
  TCP; ``start_tls()`` upgrades later (STARTTLS); ``tls_info()`` reports
  the handshake and the peer's certificates even when they did not verify.
* Resources: every socket is closed by ``close()``, by the ``with`` block, or
  when the object is garbage-collected.
"""

# _core makes _probe_core (the checks' private helpers) on import; binding
# it here makes socketkit._probe_core an attribute too.
from socketkit import _core, _probe_core  # noqa: F401
from socketkit._core import (
    Keepalive,
    LineIterator,
    TcpClient,
    TcpOptions,
    TcpServer,
    TlsConfig,
    UdpClient,
    UdpOptions,
    UdpServer,
    UdpSocket,
    __version__,
)
from socketkit.exceptions import (
    AddressInUseError,
    BrokenPipeError,
    CertificateError,
    ConnectionAbortedError,
    ConnectionClosedError,
    ConnectionRefusedError,
    ConnectionResetError,
    DialogueError,
    Error,
    LimitExceededError,
    ResolveError,
    TimeoutError,
    TlsError,
)
from socketkit.fleet import FleetReport, report
from socketkit.probes import (
    banner,
    check,
    check_iter,
    check_many,
    scan,
    scan_iter,
    tcping,
    tcping_iter,
    udp_probe,
    wait_for,
)
from socketkit.results import CheckResult, PingProbe, PingStats, Results, ScanReport
from socketkit.service import SERVICES, Expect, Send, StartTls
from socketkit.tls import CertInfo, TlsInfo
from socketkit.tls_probes import tls_check, tls_check_iter, tls_check_many
from socketkit.tls_results import TlsResult, TlsResults

#: Reachable as socketkit.TimeoutError, ..., but not in __all__ (below).
_LIKE_BUILTINS = (
    BrokenPipeError,
    ConnectionAbortedError,
    ConnectionRefusedError,
    ConnectionResetError,
    TimeoutError,
)

# The classes named like builtins (TimeoutError, ConnectionRefusedError,
# ConnectionResetError, ConnectionAbortedError, BrokenPipeError) stay out of
# __all__: `from socketkit import *` (common in notebooks) must not shadow
# the builtins, after which `except TimeoutError:` would miss a stdlib
# timeout. They are socketkit.TimeoutError, ... as before.
__all__ = [
    "SERVICES",
    "AddressInUseError",
    "CertInfo",
    "CertificateError",
    "CheckResult",
    "ConnectionClosedError",
    "DialogueError",
    "Error",
    "Expect",
    "FleetReport",
    "Keepalive",
    "LimitExceededError",
    "LineIterator",
    "PingProbe",
    "PingStats",
    "ResolveError",
    "Results",
    "ScanReport",
    "Send",
    "StartTls",
    "TcpClient",
    "TcpOptions",
    "TcpServer",
    "TlsConfig",
    "TlsError",
    "TlsInfo",
    "TlsResult",
    "TlsResults",
    "UdpClient",
    "UdpOptions",
    "UdpServer",
    "UdpSocket",
    "__version__",
    "banner",
    "check",
    "check_iter",
    "check_many",
    "report",
    "scan",
    "scan_iter",
    "tcping",
    "tcping_iter",
    "tls_check",
    "tls_check_iter",
    "tls_check_many",
    "udp_probe",
    "wait_for",
]
