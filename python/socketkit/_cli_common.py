"""What every ``socketkit`` subcommand shares: exit statuses, the usage
error, DATA decoding, JSON lines (each stamped with its vantage point),
the progress decision, error text."""

from __future__ import annotations

import argparse
import codecs
import json
import socket
import sys
from typing import Any

from socketkit._format import round_floats

EXIT_OK = 0
EXIT_DOWN = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 124  # as coreutils timeout(1), which wait-for-it.sh uses
EXIT_INTERRUPTED = 130  # the shell's 128 + SIGINT


class UsageError(Exception):
    """Bad input: reported as one line, exit status 2."""


def decode_data(text: str) -> bytes:
    """DATA as typed on a command line: backslash escapes (``\\r\\n``, ``\\x00``)."""
    try:
        return codecs.escape_decode(text.encode())[0]  # type: ignore[attr-defined,no-any-return]
    except ValueError as e:
        raise UsageError(f"DATA: {e}") from None


#: Where this run measures from, stamped on every ``--json`` record: the
#: host name unless ``--vantage NAME`` says otherwise (set by ``cli.main``).
_vantage: str | None = None


def set_vantage(name: str | None) -> None:
    global _vantage
    _vantage = name


def vantage() -> str:
    return _vantage if _vantage is not None else socket.gethostname()


def stamp(doc: Any) -> Any:
    """``doc`` with ``vantage`` in each record: the object itself, or each
    object of a top-level array (nested objects belong to their record),
    so ``socketkit report`` can merge the output of many machines."""
    if isinstance(doc, dict):
        return {**doc, "vantage": vantage()}
    if isinstance(doc, list):
        return [stamp(d) if isinstance(d, dict) else d for d in doc]
    return doc


def emit(doc: Any) -> None:
    """One JSON document on its own line, floats as the exports round them,
    every record stamped with its vantage point."""
    print(json.dumps(round_floats(stamp(doc))), flush=True)


def progress(args: argparse.Namespace) -> bool | None:
    return True if sys.stderr.isatty() and not getattr(args, "json", False) else None


def error_text(e: OSError) -> str:
    """An error for a person: the message without ``[Errno 110]``."""
    return str(e.strerror or e)
