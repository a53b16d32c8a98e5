"""The stdlib socket tutorial examples (create, bind, connect, send/sendall/
recv, sendto/recvfrom, close) ported to socketkit, with a stdlib socket as
the peer, in both directions (DESIGN.md section 1, the mirror table)."""

from __future__ import annotations

import socket
import threading

from peers import recv_all

import socketkit

# --- TCP: socketkit client, stdlib server -------------------------------------


def test_tcp_echo_client_against_stdlib_server(tcp_peer):
    # The tutorial's echo server, written with the stdlib.
    def handler(conn: socket.socket) -> None:
        while True:
            data = conn.recv(1024)
            if not data:
                break
            conn.sendall(data)

    srv = tcp_peer(handler)
    # The tutorial's echo client, written with socketkit.
    with socketkit.TcpClient(srv.address, timeout=5) as s:
        s.sendall(b"Hello, world")
        data = s.recv(1024)
    assert data == b"Hello, world"
    assert s.closed


def test_tcp_send_returns_count_and_recv_returns_bytes(tcp_peer):
    got = []

    def handler(conn: socket.socket) -> None:
        got.append(recv_all(conn))
        conn.sendall(b"thanks")

    srv = tcp_peer(handler)
    c = socketkit.TcpClient(f"127.0.0.1:{srv.address[1]}", timeout=5)
    n = c.send(b"abc")
    assert n == 3
    c.sendall(bytearray(b"def"))
    c.sendall(memoryview(b"xxghiyy")[2:5])
    c.shutdown("write")
    assert c.recv(1024) == b"thanks"
    assert c.recv(1024) == b""  # EOF, like the stdlib
    c.close()
    srv.stop()
    assert got == [b"abcdefghi"]


# --- TCP: stdlib client, socketkit "server side" -----------------------------
# There is no TcpServer yet; the server side of the tutorial is a stdlib
# listener whose accepted socket is adopted by socketkit (from_socket).


def test_stdlib_client_against_socketkit_connection():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        result: list[bytes] = []

        def stdlib_client() -> None:
            with socket.create_connection(listener.getsockname(), timeout=5) as s:
                s.sendall(b"ping\n")
                result.append(s.recv(1024))

        t = threading.Thread(target=stdlib_client)
        t.start()
        listener.settimeout(5)
        conn, peer = listener.accept()
        conn.settimeout(5)
        with socketkit.TcpClient.from_socket(conn) as server_side:
            assert server_side.peer_address == peer
            line = server_side.recv_line()
            server_side.sendall(b"pong: " + line)
        t.join(5)
        assert not t.is_alive()
    assert result == [b"pong: ping\n"]


# --- UDP: socketkit socket, stdlib peer ----------------------------------------


def test_udp_sendto_recvfrom_against_stdlib_peer():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        with socketkit.UdpSocket(("127.0.0.1", 0), timeout=5) as u:
            assert u.sendto(b"hello", peer.getsockname()) == 5
            data, addr = peer.recvfrom(1024)
            assert data == b"hello"
            assert addr == u.local_address
            peer.sendto(b"world", addr)
            data, addr = u.recvfrom(1024)
            assert data == b"world"
            assert addr == peer.getsockname()


def test_udp_unbound_socket_is_made_by_first_sendto():
    # stdlib: a fresh socket's first sendto binds it implicitly.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        with socketkit.UdpSocket(timeout=5) as u:
            assert u.local_address is None
            u.sendto(b"first", f"127.0.0.1:{peer.getsockname()[1]}")
            assert u.local_address is not None
            data, addr = peer.recvfrom(1024)
            assert data == b"first"
            assert addr[1] == u.local_address[1]
            peer.sendto(b"reply", addr)
            assert u.recvfrom(1024)[0] == b"reply"


# --- UDP: stdlib client, socketkit server side ---------------------------------


def test_stdlib_udp_client_against_socketkit_socket():
    with socketkit.UdpSocket(("127.0.0.1", 0), timeout=5) as server:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(b"question", server.local_address)
            data, addr = server.recvfrom(1024)
            assert data == b"question"
            assert addr == ("127.0.0.1", client.getsockname()[1])
            server.sendto(data.upper(), addr)
            reply, from_ = client.recvfrom(1024)
            assert reply == b"QUESTION"
            assert from_ == server.local_address


def test_close_then_stdlib_peer_sees_eof(tcp_peer):
    seen: list[bytes] = []
    done = threading.Event()

    def handler(conn: socket.socket) -> None:
        conn.settimeout(5)
        seen.append(recv_all(conn))
        done.set()

    srv = tcp_peer(handler)
    c = socketkit.TcpClient(srv.address, timeout=5)
    c.sendall(b"bye")
    c.close()
    assert done.wait(5)
    assert seen == [b"bye"]
