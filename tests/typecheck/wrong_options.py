"""Options a type checker refuses: each `# error:` line must draw a mypy
error containing that text, and no other line may (tests/test_typing.py).
Only type-checked, never run."""

import socketkit


def main() -> None:
    socketkit.TcpClient("127.0.0.1:80", broadcast=True)  # error: "broadcast"
    socketkit.UdpSocket(nodelay=True)  # error: "nodelay"
    socketkit.TcpClient("127.0.0.1:80", ttl="64")  # error: "ttl"
    socketkit.TcpServer.echo(keepalive=30)  # error: "keepalive"
    socketkit.UdpServer(reuse_adress=True)  # error: "reuse_adress"


def options() -> socketkit.TcpOptions:
    return {"nodelay": 1.5}  # error: "nodelay"
