"""A user script with every option spelled right: `mypy --strict` passes it
(tests/test_typing.py). Only type-checked, never run."""

import socketkit


def main() -> None:
    opts: socketkit.TcpOptions = {"nodelay": True, "keepalive": socketkit.Keepalive(idle=60)}
    with socketkit.TcpClient(("127.0.0.1", 6379), timeout=5, **opts) as c:
        c.sendall(b"PING\r\n")
    with socketkit.UdpSocket(("127.0.0.1", 0), broadcast=True, multicast_ttl=1) as u:
        u.sendto(b"x", ("127.0.0.1", 9))
    with socketkit.TcpServer(handler=lambda conn: None, reuse_port=True, linger=0.5):
        pass
    socketkit.UdpServer.echo(recv_buffer=1 << 20).stop()
    socketkit.TcpServer.echo(nodelay=True).stop()
    socketkit.UdpClient("127.0.0.1:9", tos=0x10).close()
    socketkit.TcpClient("127.0.0.1:80", ttl=64, only_v6=False, bind_device="lo").close()
