"""A user script with a misspelled option: `mypy --strict` must fail on it,
naming the option (tests/test_typing.py). Only type-checked, never run."""

import socketkit


def main() -> None:
    with socketkit.TcpClient(("127.0.0.1", 6379), timeout=5, nodelai=True) as c:  # error: "nodelai"
        c.sendall(b"PING\r\n")
