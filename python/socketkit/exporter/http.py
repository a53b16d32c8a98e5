"""The exporter's HTTP/1.1 server: one asyncio event loop per process,
one Protocol per connection, requests parsed from its buffer.

Why not ``http.server``: its ThreadingHTTPServer gives every connection a
thread, and under 50 concurrent keep-alive scrapes (benches/exporter.py)
those threads spent their time handing the GIL to each other: ~8 context
switches a probe, 1.5-2.6 threads per worker runnable but waiting for a
core, 260 us of CPU a probe; its request parsing (BaseHTTPRequestHandler
and the email package's header parser) was a fifth of that. Here one
thread serves every connection of the process and a probe awaits
socketkit.aio's clients: ~2 context switches and ~140 us a probe.

What it keeps of HTTP/1.1 (RFC 9112): keep-alive (HTTP/1.1 unless
``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``),
pipelined requests answered in order, requests split across reads,
``Content-Length`` bodies read (and ``Expect: 100-continue`` answered),
``HEAD`` without a body. A malformed request gets 400 (431 for a head over
HEAD_LIMIT bytes or MAX_HEADERS lines, 413 for a body over BODY_LIMIT, 505
for an HTTP version other than 1.x, 501 for a Transfer-Encoding) with the
reason as its body, and its connection is closed: a slow or garbage client
costs only its own connection, and a bounded buffer."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import mmap
import re
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus

log = logging.getLogger("socketkit.exporter")

#: The request line and headers together (http.server allowed 64 KiB a line).
HEAD_LIMIT = 65536
MAX_HEADERS = 100  # as http.server
BODY_LIMIT = 1 << 20  # a POST /-/reload needs none; more is not a request of ours
#: Unread pipelined bytes held before the connection stops being read.
BUFFER_LIMIT = HEAD_LIMIT + BODY_LIMIT

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_CONTROL = re.compile(rb"[\x00-\x20\x7f]")  # not in a request target


@dataclass
class Request:
    method: str
    target: str
    version: tuple[int, int]
    #: Lower-case names; a repeated header's values joined by ", ".
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """A request that cannot be parsed: its status and reason; the
    connection closes after the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def parse_head(head: bytes) -> Request:
    """The request line and headers (without the blank line)."""
    lines = head.split(b"\n")
    if len(lines) > MAX_HEADERS + 1:
        raise BadRequest(431, f"Too many headers (over {MAX_HEADERS})")
    method, target, minor = parse_request_line(lines[0])
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        raw = raw.rstrip(b"\r")
        name, colon, value = raw.partition(b":")
        # RFC 9112 5.1-5.2: no space before the colon, no obsolete line folding.
        if not colon or not _TOKEN.fullmatch(name):
            raise BadRequest(400, f"Bad header line {_show(raw)}")
        key = name.decode("ascii").lower()
        text = value.strip(b" \t").decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Request(method, target, (1, minor), headers)


def parse_request_line(line: bytes) -> tuple[str, str, int]:
    """(method, target, HTTP/1.x minor version) or BadRequest."""
    line = line.rstrip(b"\r")
    parts = line.split(b" ")
    if len(parts) != 3 or not all(parts):
        raise BadRequest(400, f"Bad request line {_show(line)}")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise BadRequest(400, f"Bad request method {_show(method)}")
    v = _VERSION.fullmatch(version)
    if v is None:
        raise BadRequest(400, f"Bad request version {_show(version)}")
    if v.group(1) != b"1":
        raise BadRequest(505, f"HTTP version not supported: {_show(version)}")
    if _CONTROL.search(target):
        raise BadRequest(400, f"Bad request target {_show(target)}")
    return method.decode("ascii"), target.decode("latin-1"), int(v.group(2))


def _show(raw: bytes) -> str:
    return repr(raw[:200].decode("latin-1"))


def _keep_alive(req: Request) -> bool:
    tokens = {t.strip().lower() for t in req.headers.get("connection", "").split(",")}
    if "close" in tokens:
        return False
    return req.version >= (1, 1) or "keep-alive" in tokens


class _Date:
    """The Date header, made once a second."""

    second = -1
    text = ""

    @classmethod
    def now(cls) -> str:
        t = int(time.time())
        if t != cls.second:
            cls.second, cls.text = t, formatdate(t, usegmt=True)
        return cls.text


def render(resp: Response, head_only: bool, close: bool, keep_alive_10: bool) -> bytes:
    phrase = HTTPStatus(resp.status).phrase
    lines = [
        f"HTTP/1.1 {resp.status} {phrase}",
        "Server: socketkit-exporter",
        f"Date: {_Date.now()}",
        f"Content-Type: {resp.content_type}",
        f"Content-Length: {len(resp.body)}",
    ]
    lines += [f"{k}: {v}" for k, v in resp.headers]
    if close:
        lines.append("Connection: close")
    elif keep_alive_10:
        lines.append("Connection: keep-alive")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + resp.body


class Connection(asyncio.Protocol):
    """One client connection: requests parsed from the buffer and answered
    one at a time, in order."""

    def __init__(self, handler: Handler, conns: set[Connection], balance: Balance) -> None:
        self.handler = handler
        self.conns = conns
        self.balance = balance
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None  # the request being answered
        self.reading = True
        self.writable = asyncio.Event()
        self.writable.set()
        self.closing = False
        self.continued = False  # 100 Continue sent for the request waiting for its body
        self.scanned = 0  # bytes of buf searched for the end of the head
        self.line_ok = False  # the request line in buf has been checked
        self.pending: tuple[Request, int, int] | None = None  # a head whose body is still coming

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Every answer leaves in one write; none waits on Nagle for a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conns.discard(self)
        self.balance.closed()
        self.closing = True
        self.writable.set()
        if self.task is not None:
            self.task.cancel()

    def pause_writing(self) -> None:
        self.writable.clear()  # a client that does not read its answers gets no more

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.task is None:
            self._next()
        elif len(self.buf) > BUFFER_LIMIT and self.reading and self.transport is not None:
            self.transport.pause_reading()
            self.reading = False

    def eof_received(self) -> bool | None:
        # A half-closed client still gets the answers to what it sent.
        self.closing = True
        if self.task is None and self.transport is not None:
            self.transport.close()
        return True

    def _next(self) -> None:
        """Start answering the next complete request in the buffer, if any."""
        assert self.transport is not None
        if self.transport.is_closing():
            return
        try:
            if self.pending is None:
                self.pending = self._head()
        except BadRequest as e:
            self._fail(e)
            return
        if self.pending is not None:
            req, start, length = self.pending
            if len(self.buf) >= start + length:
                self.pending = None
                req.body = bytes(self.buf[start : start + length])
                del self.buf[: start + length]
                self.task = asyncio.ensure_future(self._answer(req))
                return
            if req.headers.get("expect", "").lower() == "100-continue" and req.version >= (1, 1):
                if not self.continued:
                    self.continued = True
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self.closing:  # the client has sent all it will: no whole request left
            self.transport.close()
        elif not self.reading:
            self.transport.resume_reading()
            self.reading = True

    def _head(self) -> tuple[Request, int, int] | None:
        """The next request's head once the buffer holds all of it: (its
        request, where its body starts, the body's length); BadRequest."""
        # RFC 9112 2.2: empty lines before a request line are ignored.
        while self.buf[:2] == b"\r\n" or self.buf[:1] == b"\n":
            del self.buf[: 2 if self.buf[:1] == b"\r" else 1]
            self.scanned = 0
        # Searched from where the last search stopped: a head trickling in a
        # byte at a time costs linear time, not quadratic.
        end = _HEAD_END.search(self.buf, max(self.scanned - 3, 0), HEAD_LIMIT + 4)
        if end is None:
            if not self.line_ok and (eol := self.buf.find(b"\n", 0, HEAD_LIMIT)) >= 0:
                # A garbage request line is answered at once, not after its head.
                parse_request_line(bytes(self.buf[:eol]))
                self.line_ok = True
            if len(self.buf) > HEAD_LIMIT:
                raise BadRequest(431, f"Request head over {HEAD_LIMIT} bytes")
            self.scanned = len(self.buf)
            return None
        self.scanned, self.line_ok, self.continued = 0, False, False
        req = parse_head(bytes(self.buf[: end.start()]))
        return req, end.end(), _content_length(req)

    async def _answer(self, req: Request) -> None:
        assert self.transport is not None
        close = not _keep_alive(req)
        try:
            resp = await self.handler(req)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here costs this request, not the server
            log.exception("exporter request %s %s failed", req.method, req.target)
            resp, close = Response(500, b"Internal server error\n"), True
        await self.writable.wait()
        if self.transport.is_closing():
            return
        if log.isEnabledFor(logging.DEBUG):  # every request: formatted only when read
            peer = self.transport.get_extra_info("peername")
            log.debug(
                '%s "%s %s HTTP/1.%d" %d %d',
                peer,
                req.method,
                req.target,
                req.version[1],
                resp.status,
                len(resp.body),
            )
        keep_10 = not close and req.version < (1, 1)
        self.transport.write(render(resp, req.method == "HEAD", close, keep_10))
        self.task = None
        if close:
            self.transport.close()
        else:
            self._next()

    def _fail(self, e: BadRequest) -> None:
        assert self.transport is not None
        log.debug("bad request: %s", e)
        self.buf.clear()
        self.transport.write(render(Response(e.status, f"{e}\n".encode()), False, True, False))
        self.transport.close()


def _content_length(req: Request) -> int:
    if "transfer-encoding" in req.headers:
        raise BadRequest(501, "Transfer-Encoding is not supported: send Content-Length")
    text = req.headers.get("content-length")
    if text is None:
        return 0
    if not text.isdigit() or not text.isascii():
        raise BadRequest(400, f"Bad Content-Length {text!r}")
    n = int(text)
    if n > BODY_LIMIT:
        raise BadRequest(413, f"Request body over {BODY_LIMIT} bytes")
    return n


class Balance:
    """How many connections each process sharing a listening socket holds,
    in an anonymous shared mmap made before the fork, so that a process
    holding more than its share lets the others accept first. Two 8-byte
    counters per process, each with one writer: connections accepted (by
    its acceptor thread, counted before the loop even sees them) and
    connections closed (by its loop)."""

    #: How long an acceptor over its share waits for the others to take a
    #: connection before it takes it anyway (a dead worker's slot, never
    #: lowered, costs at most this per connection).
    DEFER = 0.05

    def __init__(self, processes: int = 1) -> None:
        self.processes = processes
        self.me = 0  # this process's slot: set in each worker after the fork
        self._mem = mmap.mmap(-1, 16 * processes) if processes > 1 else None
        self._accepted = self._closed = 0

    def accepted(self) -> None:
        if self._mem is not None:
            self._accepted += 1
            struct.pack_into("<q", self._mem, 16 * self.me, self._accepted)

    def closed(self) -> None:
        if self._mem is not None:
            self._closed += 1
            struct.pack_into("<q", self._mem, 16 * self.me + 8, self._closed)

    def over(self) -> bool:
        """Whether this process holds more than one connection over the
        fewest any process holds."""
        if self._mem is None:
            return False
        c = struct.unpack_from(f"<{2 * self.processes}q", self._mem)
        held = [c[i] - c[i + 1] for i in range(0, len(c), 2)]
        return held[self.me] > min(held) + 1


async def serve(
    sock: socket.socket,
    handler: Handler,
    stop: asyncio.Event,
    ready: Callable[[], object] | None = None,
    balance: Balance | None = None,
) -> None:
    """Answer connections accepted on ``sock`` (a listening socket, maybe
    shared with forked workers) until ``stop`` is set; then close every
    connection and shut ``sock`` down (it stops listening, for every
    process that shares it: workers stop together) for its owner to close."""
    loop = asyncio.get_running_loop()
    conns: set[Connection] = set()
    bal = balance if balance is not None else Balance()
    connecting: set[asyncio.Task[None]] = set()  # held until done (the loop keeps weak references)
    stopping = threading.Event()

    def start(conn: socket.socket) -> None:
        task = loop.create_task(_connect(conn))
        connecting.add(task)
        task.add_done_callback(connecting.discard)

    async def _connect(conn: socket.socket) -> None:
        try:
            await loop.connect_accepted_socket(lambda: Connection(handler, conns, bal), conn)
        except OSError:
            conn.close()
            bal.closed()

    def accept() -> None:
        # A blocking accept on a thread of its own, not the loop's epoll:
        # the kernel wakes one blocked accept per connection, the one that
        # has waited longest, so workers sharing the socket take turns. Each
        # woken by epoll instead raced for every connection, and one worker
        # took 42-49 of a burst of 50 keep-alive scrapes (one core busy,
        # the other idle). In a burst the acceptor that comes back first
        # finds the queue full without waiting, so one over its share also
        # steps back a moment.
        while not stopping.is_set():
            deadline = time.monotonic() + bal.DEFER
            while bal.over() and time.monotonic() < deadline and not stopping.wait(0.001):
                pass
            try:
                conn, _ = sock.accept()
            except (InterruptedError, ConnectionAbortedError):
                continue
            except OSError as e:
                if stopping.is_set() or e.errno in (errno.EINVAL, errno.EBADF):
                    return  # shut down: by this process's stop or a worker's
                log.error("exporter accept failed: %s", e)  # EMFILE and the like
                stopping.wait(0.1)
                continue
            bal.accepted()
            try:
                loop.call_soon_threadsafe(start, conn)
            except RuntimeError:  # the loop has ended
                conn.close()
                return

    sock.setblocking(True)
    acceptor = threading.Thread(target=accept, name="socketkit-exporter-accept", daemon=True)
    acceptor.start()
    try:
        if ready is not None:
            ready()
        await stop.wait()
    finally:
        stopping.set()
        with contextlib.suppress(OSError):  # wakes the blocked accept
            sock.shutdown(socket.SHUT_RD)
        # It returns at once now; joined, so no accept outlives stop() and
        # the owner's close() cannot race one.
        acceptor.join(1.0)
        for c in list(conns):
            if c.transport is not None:
                c.transport.abort()
        await asyncio.sleep(0)  # their connection_lost callbacks run
