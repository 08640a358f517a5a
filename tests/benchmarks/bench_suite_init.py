"""Benchmark of `wap suite init` on wide sources (a script, not a pytest test).

    uv run python tests/benchmarks/bench_suite_init.py [--columns 250,1000,5000] [--rows 5]

Each width runs the real CLI in a fresh process on a fresh copy of gx/ (so the figures include Python,
GX and pyarrow start-up, as a user sees them), side by side in one run. Prints seconds per width, the
time per 1000 columns and each width's ratio to the narrowest: the work is linear in the columns when
the per-1000-columns figure stays flat (before the fix, 250/500/1000 columns took 29/90/329 s).
Ends with one line `BENCH_SUMMARY {json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from test_suite_init_scale import DATASET, fresh_gx, gx_env, wide_csv  # noqa: E402

REPO = TESTS.parent


def time_init(columns: int, rows: int, workdir: Path) -> float:
    source = wide_csv(workdir / f"w{columns}.csv", columns, rows)
    gx = fresh_gx(workdir / f"gx{columns}")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "suite", "init", DATASET, "--source", str(source)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **gx_env(gx)},
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"suite init failed at {columns} columns: {result.stderr.strip()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", default="250,1000,5000")
    parser.add_argument("--rows", type=int, default=5)
    args = parser.parse_args()
    widths = [int(x) for x in args.columns.split(",")]
    figures: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-suite-init-") as tmp:
        time_init(10, args.rows, Path(tmp))  # warm the OS file cache for the imports
        for columns in widths:
            figures[columns] = time_init(columns, args.rows, Path(tmp))
    base = widths[0]
    print(f"{'columns':>8} {'seconds':>8} {'s/1000 cols':>12} {'x time':>7} {'x columns':>10}")
    for columns, seconds in figures.items():
        print(
            f"{columns:>8} {seconds:>8.1f} {seconds / columns * 1000:>12.2f}"
            f" {seconds / figures[base]:>7.2f} {columns / base:>10.1f}"
        )
    print("BENCH_SUMMARY " + json.dumps({"suite_init_seconds": figures}))


if __name__ == "__main__":
    main()
