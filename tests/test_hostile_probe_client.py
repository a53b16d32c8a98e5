"""Issue 15 item 11 (second half): a closed ``TcpClient``.

Before: ``local_address`` said port 0 once closed (unless it had been read
while open), and ``detach()`` of a closed client complained about bytes
still buffered, bytes no call could read any more.

Now: ``close()`` drops unread bytes; ``local_address`` and ``peer_address``
stay readable with the addresses the connection had (as asyncio's
``get_extra_info("sockname")``); ``detach()`` of a closed client raises the
``OSError`` (EBADF) of every other call on it. The stdlib's
``socket.detach()`` returns -1 there, but ours returns a socket object and
there is none to return.
"""

from __future__ import annotations

import errno
import socket

import pytest

import socketkit


@pytest.fixture
def pair():
    """A connected client and the stdlib socket it connected to."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        c = socketkit.TcpClient(srv.getsockname(), timeout=5)
        peer, _ = srv.accept()
        with peer:
            yield c, peer
        c.close()


def test_a_closed_client_keeps_its_local_address(pair) -> None:
    c, peer = pair
    mine = peer.getpeername()
    c.close()
    assert c.local_address == mine
    assert c.peer_address == peer.getsockname()
    assert f"{mine[0]}:{mine[1]} ->" in repr(c)
    assert c.fileno() == -1


def test_a_detached_client_keeps_its_local_address(pair) -> None:
    c, peer = pair
    with c.detach() as s:
        assert c.local_address == s.getsockname() == peer.getpeername()


def test_detach_of_a_closed_client_raises_ebadf_not_a_buffer_complaint(pair) -> None:
    c, peer = pair
    peer.sendall(b"one\ntwo\n")
    assert c.recv_line() == b"one\n"  # "two\n" arrived with it and waits
    with pytest.raises(ValueError, match="buffered"):
        c.detach()  # open: refusing to lose the bytes is right
    c.close()
    with pytest.raises(OSError) as e:
        c.detach()
    assert not isinstance(e.value, ValueError), e.value
    assert e.value.errno == errno.EBADF
    # The same error as any other call on the closed client.
    with pytest.raises(OSError) as r:
        c.recv()
    assert r.value.errno == errno.EBADF


def test_detach_twice_raises_ebadf(pair) -> None:
    c, _ = pair
    c.detach().close()
    with pytest.raises(OSError) as e:
        c.detach()
    assert e.value.errno == errno.EBADF
