"""A user script with typos in a probe state and a server framing:
`mypy --strict` must catch both (tests/test_typing.py, issue 17 item 19).
Only type-checked, never run."""

import socketkit


def main() -> None:
    r = socketkit.check("127.0.0.1:22")
    if r.state == "opne":  # error: Non-overlapping equality check
        print("typo")
    if r.state == "open|filtered" or r.proto == "udp":
        print("fine")
    socketkit.TcpServer(on_message=lambda m: m, framing="lines")  # error: "framing"
    socketkit.TcpServer(on_message=lambda m: m, framing="length")
