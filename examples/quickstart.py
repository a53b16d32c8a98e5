"""A real job with socketkit, runnable on any machine without network access.

It starts a local HTTP server (the stdlib's http.server), a local UDP echo
peer and a socketkit TCP server, then does what an ops script does: wait
until the services are up, check and scan their ports, time handshakes,
connect with a timeout, send a request, read the reply, inspect the
connection, and talk UDP.

    python examples/quickstart.py
"""

from __future__ import annotations

import http.server
import socket
import threading

import socketkit


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    # A real HTTP server on a free loopback port.
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    web = threading.Thread(target=httpd.serve_forever, daemon=True)
    web.start()
    port = httpd.server_address[1]

    # A socketkit server whose handler answers each line in upper case.
    def shout(conn: socketkit.TcpClient) -> None:
        for line in conn.lines():
            conn.sendall(line.upper())

    with socketkit.TcpServer(("127.0.0.1", 0), handler=shout) as shouter:
        srv_port = shouter.address[1]
        # The ops probes: wait until up, check, scan, time handshakes.
        waited = socketkit.wait_for([f"127.0.0.1:{port}", ("127.0.0.1", srv_port)], timeout=10)
        print(f"up after:  {waited:.3f} s")
        print(socketkit.check_many([("127.0.0.1", port), ("127.0.0.1", srv_port)]))
        report = socketkit.scan("127.0.0.1", f"{min(port, srv_port)}-{max(port, srv_port)}")
        print("open:     ", report.open_ports())
        print(socketkit.tcping(("127.0.0.1", srv_port), count=3, interval=0.1))
        with socketkit.TcpClient(("127.0.0.1", srv_port), timeout=2) as c:
            print("shouted:  ", c.request(b"hello server\n"))
        assert {port, srv_port} <= set(report.open_ports()), report

    # TCP: connect (name resolution included in the 2 s deadline), request, read.
    with socketkit.TcpClient(("localhost", port), timeout=2, nodelay=True) as c:
        print("connected:", c)
        head = c.request(b"HEAD / HTTP/1.0\r\nHost: localhost\r\n\r\n", until=b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode()
        print("status:   ", status)
        info = c.tcp_info()
        print(f"tcp_info:  state={info['state']} rtt={info['rtt_ms']:.3f} ms cwnd={info['cwnd']}")
        print("nodelay:  ", c.options()["nodelay"])
    httpd.shutdown()
    httpd.server_close()

    # UDP: a stdlib peer echoing one datagram; socketkit's request() resends on silence.
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))

    def echo_once() -> None:
        data, addr = peer.recvfrom(2048)
        peer.sendto(data.upper(), addr)

    t = threading.Thread(target=echo_once)
    t.start()
    with socketkit.UdpClient(peer.getsockname(), timeout=2) as u:
        print("udp reply:", u.request(b"hello over udp", timeout=0.5, retries=3))
    t.join()
    peer.close()

    # Errors are the builtins old code already catches.
    free = socket.create_server(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()
    try:
        socketkit.TcpClient(("127.0.0.1", closed_port), timeout=1)
    except ConnectionRefusedError as e:
        print("refused:  ", e.errno, e.attempts)
    assert status.startswith("HTTP/1.0 200"), status
    print("ok")


if __name__ == "__main__":
    main()
