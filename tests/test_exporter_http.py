"""The exporter's own HTTP/1.1 handling (socketkit/exporter/http.py),
driven over real sockets: requests split across writes, keep-alive and
pipelined requests answered in order, HTTP/1.0, Content-Length bodies and
100-continue, bad requests answered 400/431/505/501 with their reason and
the connection closed, a stalled or garbage client costing only its own
connection; and the blocking run_probe / Exporter.probe still working."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")
pytest.importorskip("yaml")

from _probe_util import listeners
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from socketkit.exporter import Exporter, parse_config, run_probe
from socketkit.exporter.http import HEAD_LIMIT

CFG = {"modules": {"tcp_connect": {"prober": "tcp"}}}


@contextmanager
def served(config: object = CFG) -> Iterator[tuple[str, int]]:
    with Exporter(config, "127.0.0.1:0") as exp:
        yield exp.address


@contextmanager
def client(addr: tuple[str, int]) -> Iterator[tuple[socket.socket, Reader]]:
    with socket.create_connection(addr, timeout=10) as s:
        yield s, Reader(s)


class Reader:
    """HTTP/1.1 answers read off one socket, one after another."""

    def __init__(self, s: socket.socket) -> None:
        self.s = s
        self.buf = b""

    def _fill(self) -> bool:
        chunk = self.s.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"closed before a whole answer: {self.buf!r}"
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, code, _ = status_line.split(" ", 2)
        assert version == "HTTP/1.1"
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        n = int(headers["content-length"])
        while len(self.buf) < n:
            assert self._fill(), "closed inside a body"
        body, self.buf = self.buf[:n], self.buf[n:]
        return int(code), headers, body

    def closed(self) -> bool:
        """Whether the server closed the connection (nothing more comes)."""
        return not self.buf and not self._fill()


def probe_req(port: int, extra: str = "") -> bytes:
    return (
        f"GET /probe?target=127.0.0.1:{port}&module=tcp_connect HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()
    )


def success(body: bytes) -> float:
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if s.name == "probe_success":
                return s.value
    raise AssertionError(body)


def test_a_request_split_across_writes_is_answered() -> None:
    with served() as addr, listeners(1) as (port,), client(addr) as (s, r):
        req = probe_req(port, "X-Prometheus-Scrape-Timeout-Seconds: 5\r\n")
        # Through the request line, inside a header name, between \r and \n.
        cuts = [3, 20, len(req) - 30, len(req) - 1]
        for a, b in zip([0, *cuts], [*cuts, len(req)], strict=True):
            s.sendall(req[a:b])
            time.sleep(0.02)  # so that each piece arrives in a read of its own
        code, headers, body = r.answer()
        assert code == 200 and success(body) == 1.0
        assert headers["content-type"] == CONTENT_TYPE_LATEST


def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    with served() as addr, listeners(1) as (port,), client(addr) as (s, r):
        for _ in range(3):  # one after another on the same connection
            s.sendall(probe_req(port))
            code, _, body = r.answer()
            assert code == 200 and success(body) == 1.0
        # Five at once in one write: a probe, a 400, a 404, a HEAD, a probe.
        s.sendall(
            probe_req(port)
            + b"GET /probe?module=tcp_connect HTTP/1.1\r\n\r\n"
            + b"GET /nothing HTTP/1.1\r\n\r\n"
            + b"HEAD /-/healthy HTTP/1.1\r\n\r\n"
            + probe_req(1)
        )
        code, _, body = r.answer()
        assert code == 200 and success(body) == 1.0
        assert r.answer()[::2] == (400, b"Target parameter is missing\n")
        assert r.answer()[::2] == (404, b"Not found\n")
        code, headers, _ = _head(r)
        assert code == 200 and headers["content-length"] == str(len(b"Healthy\n"))
        code, _, body = r.answer()
        assert code == 200 and success(body) == 0.0  # port 1: refused
        s.sendall(b"GET /-/healthy HTTP/1.1\r\nConnection: close\r\n\r\n")
        code, headers, _ = r.answer()
        assert code == 200 and headers["connection"] == "close" and r.closed()


def _head(r: Reader) -> tuple[int, dict[str, str], bytes]:
    """A HEAD answer: its headers give the body's length, and no body follows."""
    while b"\r\n\r\n" not in r.buf:
        assert r._fill()
    head, _, r.buf = r.buf.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, b""


def test_http_1_0_closes_unless_asked_to_keep_alive() -> None:
    with served() as addr:
        with client(addr) as (s, r):
            s.sendall(b"GET /-/healthy HTTP/1.0\r\n\r\n")
            assert r.answer()[::2] == (200, b"Healthy\n") and r.closed()
        with client(addr) as (s, r):
            for _ in range(2):
                s.sendall(b"GET /-/healthy HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                code, headers, _ = r.answer()
                assert code == 200 and headers["connection"] == "keep-alive"


@pytest.mark.parametrize(
    ("request_bytes", "code", "reason"),
    [
        (b"GARBAGE\r\n\r\n", 400, "Bad request line"),
        (b"GET /probe\r\n\r\n", 400, "Bad request line"),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400, "Bad request line"),
        (b"GET / HTTX/1.1\r\n\r\n", 400, "Bad request version"),
        (b"GET / HTTP/2.0\r\n\r\n", 505, "HTTP version not supported"),
        (b"G(T / HTTP/1.1\r\n\r\n", 400, "Bad request method"),
        (b"GET /a\x01b HTTP/1.1\r\n\r\n", 400, "Bad request target"),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400, "Bad header line"),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "Bad header line"),
        (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "Bad header line"),
        (b"POST /-/reload HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400, "Bad Content-Length"),
        (b"POST /-/reload HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413, "body over"),
        (b"POST /-/reload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, "Transfer-Encoding"),
        (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 101 + b"\r\n", 431, "Too many headers"),
    ],
)
def test_a_bad_request_gets_its_status_and_reason_and_closes(
    request_bytes: bytes, code: int, reason: str
) -> None:
    with served() as addr:
        with client(addr) as (s, r):
            s.sendall(request_bytes)
            got, headers, body = r.answer()
            assert got == code and reason in body.decode(), body
            assert headers["connection"] == "close" and r.closed()
        with client(addr) as (s, r):  # the server itself goes on
            s.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
            assert r.answer()[0] == 200


def test_an_oversized_head_gets_431_without_waiting_for_its_end() -> None:
    with served() as addr, client(addr) as (s, r):
        s.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (HEAD_LIMIT + 10))  # no blank line ever
        code, _, body = r.answer()
        assert code == 431 and b"Request head over" in body and r.closed()


def test_a_stalled_or_garbage_client_costs_only_its_own_connection() -> None:
    with served() as addr, listeners(1) as (port,), client(addr) as (stalled, _):
        stalled.sendall(b"GET /probe?target=127.0.0.1:")  # and nothing more
        with client(addr) as (garbage, gr):
            garbage.sendall(bytes(range(256)) * 4)
            assert gr.answer()[0] == 400 and gr.closed()
        with client(addr) as (s, r):
            s.sendall(probe_req(port))
            code, _, body = r.answer()
            assert code == 200 and success(body) == 1.0


def test_methods_and_paths() -> None:
    with served() as addr, client(addr) as (s, r):
        s.sendall(b"DELETE /probe HTTP/1.1\r\n\r\n")
        code, headers, _ = r.answer()
        assert code == 405 and "GET" in headers["allow"]
        s.sendall(b"POST /probe HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert r.answer()[0] == 405
        s.sendall(b"GET /nowhere HTTP/1.1\r\n\r\n")
        assert r.answer()[0] == 404
        s.sendall(b"GET http://example.org/-/healthy HTTP/1.1\r\n\r\n")  # absolute-form
        assert r.answer()[::2] == (200, b"Healthy\n")
        s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        assert b"socketkit_exporter_bad_requests_total" in r.answer()[2]


def test_post_reload_reads_its_body_and_the_connection_goes_on(tmp_path: Path) -> None:
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text("modules:\n  tcp_connect:\n    prober: tcp\n")
    with Exporter(cfg, "127.0.0.1:0") as exp, client(exp.address) as (s, r):
        cfg.write_text("modules:\n  tcp_connect:\n    prober: tcp\n  added:\n    prober: tcp\n")
        body = b"GET /nothing HTTP/1.1\r\n\r\n"  # a body that looks like a request: not one
        s.sendall(b"POST /-/reload HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert r.answer()[::2] == (200, b"Reloaded\n")
        assert "added" in exp.config.modules
        # Expect: 100-continue: the interim answer first, then the body is read.
        s.sendall(b"POST /-/reload HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        while b"\r\n\r\n" not in r.buf:
            assert r._fill()
        assert r.buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        r.buf = r.buf[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        s.sendall(b"body")
        assert r.answer()[::2] == (200, b"Reloaded\n")
        s.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
        assert r.answer()[::2] == (200, b"Healthy\n")


def test_header_names_are_case_insensitive() -> None:
    with served({"modules": {"t": {"prober": "tcp"}}}) as addr, client(addr) as (s, r):
        s.sendall(
            b"GET /probe?target=127.0.0.1:1&module=t HTTP/1.1\r\nx-prometheus-scrape-timeout-SECONDS: no\r\n\r\n"
        )
        code, _, body = r.answer()
        assert code == 400 and b"Scrape-Timeout" in body


def test_blocking_run_probe_and_exporter_probe_still_work() -> None:
    module = parse_config(CFG).modules["tcp_connect"]
    with listeners(1) as (port,):
        registry, ok, why = run_probe(module, "127.0.0.1", port, 5.0)
        assert ok and why == "" and registry.get_sample_value("probe_success") == 1.0

        async def from_a_coroutine() -> bool:
            return run_probe(module, "127.0.0.1", port, 5.0)[1]

        assert asyncio.run(from_a_coroutine())
        with Exporter(CFG, "127.0.0.1:0") as exp:
            text = exp.probe({"target": [f"127.0.0.1:{port}"], "module": ["tcp_connect"]}, None)
            assert success(text) == 1.0


def test_a_client_that_does_not_read_its_answers_holds_up_only_itself() -> None:
    n = 20000  # ~3 MB of answers: far past what the socket buffers hold
    with served() as addr, socket.socket() as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(30)
        slow.connect(addr)
        slow.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n" * n)  # and reads nothing yet
        with client(addr) as (s, r):
            s.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
            assert r.answer()[::2] == (200, b"Healthy\n")
        sr = Reader(slow)  # every answer then comes, in order
        assert all(sr.answer()[::2] == (200, b"Healthy\n") for _ in range(n))
