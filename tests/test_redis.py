"""A real peer nobody here wrote: redis-server answers PING, SET and GET
through TcpClient.request (RESP over TCP on 127.0.0.1)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
from peers import free_port

import socketkit

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS is None, reason="redis-server is not installed (apt-get install redis-server)"
)


def resp(*args: bytes | str) -> bytes:
    """Encode a command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64) == b"+PONG\r\n"
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("redis")
    for _ in range(3):  # a free port can be taken between probe and bind: retry
        port = free_port()
        with open(workdir / "redis.log", "wb") as log:
            proc = subprocess.Popen(
                [
                    REDIS,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(workdir),
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < deadline:
            if redis_answers(port):
                break
            time.sleep(0.05)
        if proc.poll() is None and redis_answers(port):
            break
        proc.terminate()
        proc.wait(10)
    else:
        log = (workdir / "redis.log").read_text(errors="replace")
        pytest.fail(f"redis-server did not start:\n{log}")
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def client(redis_port):
    with socketkit.TcpClient(("127.0.0.1", redis_port), timeout=10, nodelay=True) as c:
        yield c


def get(c: socketkit.TcpClient, key: bytes | str) -> bytes | None:
    """GET: a bulk string reply is "$N\\r\\n" then N bytes and "\\r\\n"."""
    header = c.request(resp("GET", key), until=b"\r\n")
    assert header.startswith(b"$"), header
    n = int(header[1:-2])
    if n < 0:
        return None
    body = c.recv_exact(n + 2)
    assert body.endswith(b"\r\n")
    return body[:-2]


def test_ping(client):
    assert client.request(resp("PING"), until=b"\r\n") == b"+PONG\r\n"
    assert client.request(b"PING\r\n", until=b"\r\n") == b"+PONG\r\n"  # inline form


def test_set_and_get(client):
    assert client.request(resp("SET", "greeting", "hello socketkit"), until=b"\r\n") == b"+OK\r\n"
    assert get(client, "greeting") == b"hello socketkit"
    assert get(client, "no-such-key") is None


def test_binary_value_of_two_mib_round_trips(client):
    value = os.urandom(2 << 20) + b"\r\n$-1\r\n"  # bytes that look like RESP inside
    assert client.request(resp("SET", "blob", value), until=b"\r\n") == b"+OK\r\n"
    assert get(client, "blob") == value
    assert client.request(resp("STRLEN", "blob"), until=b"\r\n") == b":%d\r\n" % len(value)


def test_pipelined_increments_read_with_recv_line(client):
    client.request(resp("DEL", "counter"), until=b"\r\n")
    client.sendall(resp("INCR", "counter") * 1000)
    replies = [client.recv_line() for _ in range(1000)]
    assert replies == [b":%d\r\n" % i for i in range(1, 1001)]


def test_error_reply(client):
    reply = client.request(resp("NOSUCHCOMMAND"), until=b"\r\n")
    assert reply.startswith(b"-ERR"), reply
    # The connection is still in step afterwards.
    assert client.request(resp("PING"), until=b"\r\n") == b"+PONG\r\n"


def test_exact_reply_length(client):
    assert client.request(resp("ECHO", "abc"), exact=len(b"$3\r\nabc\r\n")) == b"$3\r\nabc\r\n"
