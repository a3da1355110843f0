"""Run every benchmark in bench/ and write one markdown table of results.

Each ``bench/bench_*.py`` exposes ``run() -> list[dict]``; every dict is one measurement with
``benchmark``, ``metric``, ``ours``, ``baseline``, ``baseline_name``, ``ratio``, ``target`` and
``unit``. They measure our figure and the baseline's in the same run.

Each benchmark runs in a fresh Python process: one benchmark's threads, imports (torch) and
servers would otherwise slow the next one's measurements (the server crop latency doubled
when it ran after the crops and S3 benchmarks in one process).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _table import markdown_table

HERE = Path(__file__).resolve().parent


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--only", nargs="*", help="benchmark file stems to run (default: all)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:  # one benchmark, in this fresh process
        rows_out: Path = args.rows_out
        rows_out.write_text(json.dumps(_load(args.child).run()), encoding="utf-8")
        return 0
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for path in sorted(HERE.glob("bench_*.py")):
        if args.only and path.stem not in args.only:
            continue
        print(f"== {path.stem}", flush=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rows.json"
            command = [sys.executable, __file__, "--child", str(path), "--rows-out", str(out)]
            done = subprocess.run(command, check=False)
            if done.returncode == 0 and out.is_file():
                rows.extend(json.loads(out.read_text(encoding="utf-8")))
            else:
                failures.append(f"{path.stem}: exit status {done.returncode} (output above)")
                print(failures[-1], file=sys.stderr)
        print(f"   {time.perf_counter() - started:.0f} s", flush=True)
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        markdown_table(rows),
    ]
    if failures:
        lines += ["", "## Failed", ""] + [f"- {f.splitlines()[0]}" for f in failures]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
