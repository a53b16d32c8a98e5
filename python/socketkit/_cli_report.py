"""``socketkit report FILES...``: the ``--json`` output of many vantage
points (and the ``socketkit.net`` modules' results) merged into one table,
target x vantage point, built on :func:`socketkit.fleet.report` (parsing
and dispatch are in ``cli``)."""

from __future__ import annotations

import argparse
import json
import sys

from socketkit._cli_common import EXIT_DOWN, EXIT_OK, UsageError
from socketkit._format import round_floats
from socketkit.fleet import CELL_FIELDS, report

__all__ = ["EXAMPLE", "EXIT_DOC", "HELP", "JSON_DOC", "add_options", "cmd_report"]

HELP = (
    "Merge the --json output of many vantage points into one table, target x vantage point. "
    "Exit 0 only if every vantage point reached every target."
)
JSON_DOC = (
    "one JSON object:\n  {targets, vantages, ok, cells, errors}\n"
    "cells: one per target and vantage point, targets first, each\n  {" + ", ".join(CELL_FIELDS) + "}\n"
    "state: as measured (missing: that vantage point has no record of it);\n"
    "errors: vantage points that measured nothing, each\n  {vantage, msg}"
)
EXIT_DOC = "0 every vantage point reached every target, 1 any did not (or measured nothing)"
EXAMPLE = (
    "examples: socketkit check db:5432 api:443 --json > $(hostname).json   (on each machine)\n"
    "          socketkit report web1.json web2.json site-b.json\n"
    "          socketkit report results/*.json --html > report.html"
)

_HTML_PAGE = (
    '<!doctype html>\n<html><head><meta charset="utf-8"><title>socketkit report</title>\n'
    "<style>table{border-collapse:collapse;font-family:sans-serif}th,td{border:1px solid #ccc;"
    "padding:2px 8px;text-align:left}td.ok{background:#dfd}td.down{background:#fdd}</style>\n"
    "</head><body>\n{table}\n</body></html>"
)


def add_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("files", nargs="+", metavar="FILE", help="JSON or JSON lines; - for stdin")
    sp.add_argument("--csv", action="store_true", help="one CSV row per target and vantage point")
    sp.add_argument("--html", action="store_true", help="an HTML page with the table")


def cmd_report(args: argparse.Namespace) -> int:
    if sum((args.json, args.csv, args.html)) > 1:
        raise UsageError("give one of --json, --csv and --html")
    sources: list[object] = []
    try:
        for f in args.files:
            if f != "-":
                sources.append(f)
                continue
            text = sys.stdin.read()
            try:
                sources.append(json.loads(text))
            except json.JSONDecodeError:
                sources.append([json.loads(line) for line in text.splitlines() if line.strip()])
        r = report(sources, vantage=args.vantage)
    except json.JSONDecodeError as e:
        raise UsageError(f"stdin: not JSON ({e.msg})") from None
    except OSError as e:
        raise UsageError(f"{e.filename}: {e.strerror}") from None
    if args.json:
        # Not emit(): every cell already says which vantage point it is from.
        print(json.dumps(round_floats(r.to_dict())), flush=True)
    elif args.csv:
        sys.stdout.write(r.to_csv())
    elif args.html:
        print(_HTML_PAGE.replace("{table}", r.to_html()))
    else:
        print(r)
    return EXIT_OK if r.ok else EXIT_DOWN
