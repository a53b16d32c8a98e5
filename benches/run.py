"""Every benchmark in one run: socketkit against the stdlib and the standard
tools, as ratios, plus the raw figures as JSON.

    python benches/run.py            # full run
    python benches/run.py --quick    # smaller sizes, fewer repeats
    python benches/run.py --only clients

Each benchmark module has `run(quick) -> list[Row]`; this prints one
Markdown table with the machine and date, and writes the raw figures to
benches/results.json (or --json PATH).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import Row, table  # noqa: E402

MODULES = ["clients", "server", "redis", "scan", "tls"]


def run_scan(quick: bool) -> tuple[list[Row], str]:
    """benches/scan.py moves its process into a private network namespace,
    so it runs as a child; its two tables (full scan, tcping) become rows and
    its output is kept verbatim."""
    cmd = [sys.executable, str(HERE / "scan.py"), *(["--quick"] if quick else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    tables: list[dict[str, float]] = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ---"):
            tables.append({})
        elif tables and len(cells) == 4 and re.fullmatch(r"[0-9.]+", cells[1]):
            tables[-1][cells[0]] = float(cells[1])
    rows: list[Row] = []
    if tables:
        scan = tables[0]
        sk_name = next((n for n in scan if n.startswith("socketkit")), None)
        if sk_name:
            sk = scan.pop(sk_name)
            rows.append(
                Row("full 65,535-port scan of 127.0.0.1", "s", False, sk, scan, "faster than each, <= 0.8 s")
            )
    if len(tables) > 1:
        ping = tables[1]
        sk_name = next((n for n in ping if n.startswith("socketkit")), None)
        if sk_name:
            sk = ping.pop(sk_name)
            rows.append(Row("tcping connect latency (median)", "ms", False, sk, ping, "within 10% of stdlib"))
    return rows, out


def machine() -> str:
    return f"{os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    ap.add_argument("--only", action="append", choices=MODULES, help="run only these benchmark modules")
    ap.add_argument("--json", type=Path, default=HERE / "results.json", help="where to write the raw figures")
    args = ap.parse_args()

    rows: list[Row] = []
    verbatim: list[str] = []
    for name in args.only or MODULES:
        if name == "scan":
            print("running scan ...", file=sys.stderr, flush=True)
            scan_rows, scan_out = run_scan(args.quick)
            rows.extend(scan_rows)
            verbatim.append(scan_out)
            continue
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                print(f"(benchmark module {name} not present, skipped)", file=sys.stderr)
                continue
            raise
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(mod.run(args.quick))

    stamp = datetime.date.today().isoformat()
    print(f"socketkit benchmarks, {stamp}, {machine()}{' (quick)' if args.quick else ''}\n")
    print(table(rows))
    for block in verbatim:
        print("\n" + block)
    args.json.write_text(
        json.dumps(
            {
                "date": stamp,
                "machine": machine(),
                "quick": args.quick,
                "rows": [dataclasses.asdict(r) for r in rows],
            },
            indent=2,
        )
    )
    print(f"\nraw figures: {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
