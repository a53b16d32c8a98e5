"""UdpSocket.send_many / recv_many (sendmmsg / recvmmsg batching)."""

from __future__ import annotations

import socket

import pytest

import socketkit


def test_send_many_to_addresses_arrives_in_order() -> None:
    with (
        socketkit.UdpSocket(("127.0.0.1", 0), timeout=5, recv_buffer=1 << 22) as rx,
        socketkit.UdpSocket(timeout=5) as tx,
    ):
        msgs = [(f"msg-{i}".encode(), rx.local_address) for i in range(300)]
        assert tx.send_many(msgs) == 300
        got: list[tuple[bytes, tuple[str, int]]] = []
        while len(got) < 300:
            batch = rx.recv_many(128)
            assert 1 <= len(batch) <= 128
            got.extend(batch)
        assert [d for d, _ in got] == [m for m, _ in msgs]
        assert {a for _, a in got} == {("127.0.0.1", tx.local_address[1])}


def test_send_many_bare_data_on_connected_socket_to_stdlib_peer() -> None:
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        with socketkit.UdpClient(peer.getsockname(), timeout=5) as u:
            assert u.send_many([b"a", bytearray(b"bb"), memoryview(b"ccc")]) == 3
            assert [peer.recvfrom(10)[0] for _ in range(3)] == [b"a", b"bb", b"ccc"]


def test_recv_many_from_stdlib_sender_truncates_to_bufsize() -> None:
    with socketkit.UdpSocket(("127.0.0.1", 0), timeout=5) as rx:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with s:
            s.sendto(b"0123456789", rx.local_address)
            s.sendto(b"xy", rx.local_address)
            got = []
            while len(got) < 2:
                got += rx.recv_many(8, bufsize=4)
            assert [d for d, _ in got] == [b"0123", b"xy"]
            assert got[0][1] == ("127.0.0.1", s.getsockname()[1])


def test_recv_many_times_out() -> None:
    with socketkit.UdpSocket(("127.0.0.1", 0), timeout=0.2) as rx, pytest.raises(socket.timeout):
        rx.recv_many()


def test_send_many_bad_input_names_the_argument() -> None:
    with socketkit.UdpSocket(("127.0.0.1", 0)) as u:
        with pytest.raises(TypeError, match="messages"):
            u.send_many(["text", ("127.0.0.1", 9)])
        with pytest.raises(ValueError, match="messages"):
            u.send_many([(b"x", "127.0.0.1:70000")])
        with pytest.raises(OSError, match="not connected"):
            u.send_many([b"no address"])
        with pytest.raises(ValueError, match="max_messages"):
            u.recv_many(-1)


def test_close_from_another_thread_wakes_recv_many() -> None:
    import threading
    import time

    u = socketkit.UdpSocket(("127.0.0.1", 0))
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            u.recv_many(8, 2048)
        except OSError as e:
            errors.append(e)

    th = threading.Thread(target=reader)
    cpu0 = time.process_time()
    th.start()
    time.sleep(0.2)
    u.close()
    th.join(5)
    assert not th.is_alive()
    assert errors and errors[0].errno == 9  # EBADF: closed, not a spin
    assert time.process_time() - cpu0 < 1.0
