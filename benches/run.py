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
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import Row, table  # noqa: E402

MODULES = ["clients", "server", "scan"]


def machine() -> str:
    return f"{os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    ap.add_argument("--only", action="append", choices=MODULES, help="run only these benchmark modules")
    ap.add_argument("--json", type=Path, default=HERE / "results.json", help="where to write the raw figures")
    args = ap.parse_args()

    rows: list[Row] = []
    for name in args.only or MODULES:
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
