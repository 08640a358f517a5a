"""Benchmark of the embedded lakehouse (a script, not a pytest test).

    uv run python tests/benchmarks/bench_lakehouse.py [--rows 1000000] [--repeat 20]

Measures, on real files in a temporary directory:
  * create_branch with 1 and with 100 tables, and with one table of 10k vs --rows rows
    (a branch is a pointer: its cost must not grow with the data);
  * import of a --rows-row CSV and Parquet file, each in a fresh interpreter (tests/lakehouse_worker.py)
    so that its peak RSS is its own: rows/s, peak RSS, and peak above a warmed-up baseline (the
    interpreter with pyiceberg's lazily imported libraries loaded, before any of the data is read);
  * merge_branch: fast-forward and three-way, on a catalog of 100 tables.
Prints a table, then one line `BENCH_SUMMARY {json}` for machines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from lakehouse_worker import worker_env  # noqa: E402  (needs TESTS on sys.path)

from flows.lakehouse import MAIN, connect  # noqa: E402
from flows.lakehouse.local import LocalClient  # noqa: E402


def make_table(rows: int) -> pa.Table:
    ids = np.arange(rows, dtype=np.int64)
    return pa.table(
        {
            "id": ids,
            "x": ids * 0.5,
            "name": pa.array(np.char.add("name_", (ids % 100_000).astype(str))),
            "tag": ids % 7,
        }
    )


def median_ms(action: Callable[[int], object], repeat: int) -> float:
    timings = []
    for i in range(repeat):
        started = time.perf_counter()
        action(i)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def branch_ms(client: LocalClient, label: str, repeat: int) -> float:
    # Flush the data just written first: SQLite's commit fsync would otherwise wait behind the kernel's
    # writeback of those files, charging data size to a branch that touches none of it.
    os.sync()
    return median_ms(lambda i: client.create_branch(f"bench.{label}{i}", MAIN), repeat)


def lakehouse_with(root: Path, tables: int, source: Path) -> LocalClient:
    client = connect("local", root)
    for i in range(tables):
        client.create_table(f"t{i}", str(source), branch=MAIN)
        client.import_data(f"t{i}", str(source), branch=MAIN)
    return client


def import_in_child(root: Path, source: Path) -> dict:
    done = subprocess.run(
        [sys.executable, str(TESTS / "lakehouse_worker.py"), "rss-import", str(root), "t", str(source)],
        capture_output=True,
        text=True,
        check=True,
        env=worker_env(),
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large table and imports")
    parser.add_argument("--repeat", type=int, default=20, help="timed repetitions (median reported)")
    args = parser.parse_args()

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wap-bench-") as tmp:
        work = Path(tmp)
        small_csv = work / "small.csv"
        pacsv.write_csv(make_table(10_000), small_csv)
        big = make_table(args.rows)
        big_csv, big_parquet = work / "big.csv", work / "big.parquet"
        pacsv.write_csv(big, big_csv)
        pq.write_table(big, big_parquet)
        del big

        # create_branch: number of tables and size of the data.
        one = lakehouse_with(work / "one", 1, small_csv)
        results["create_branch_1_table_10k_rows_ms"] = branch_ms(one, "a", args.repeat)
        hundred = lakehouse_with(work / "hundred", 100, small_csv)
        results["create_branch_100_tables_ms"] = branch_ms(hundred, "a", args.repeat)
        large = lakehouse_with(work / "large", 1, big_csv)
        results[f"create_branch_1_table_{args.rows}_rows_ms"] = branch_ms(large, "a", args.repeat)

        # Imports, each in its own interpreter.
        for fmt, source in (("csv", big_csv), ("parquet", big_parquet)):
            run = import_in_child(work / f"import_{fmt}", source)
            assert run["rows"] == run["records"] == args.rows, run
            results[f"import_{fmt}_rows_per_s"] = args.rows / run["seconds"]
            results[f"import_{fmt}_s"] = run["seconds"]
            results[f"create_table_{fmt}_s"] = run["create_seconds"]  # schema inference + empty table
            results[f"import_{fmt}_peak_rss_mib"] = run["peak_kb"] / 1024
            results[f"import_{fmt}_rss_above_baseline_mib"] = (run["peak_kb"] - run["baseline_kb"]) / 1024

        # Merges on the 100-table catalog. Fast-forward: a fresh branch per merge, main untouched since.
        repeat = max(3, args.repeat // 4)
        ff_times = []
        for i in range(repeat):
            hundred.create_branch(f"bench.ff{i}", MAIN)
            hundred.import_data(f"t{i}", str(small_csv), branch=f"bench.ff{i}")
            started = time.perf_counter()
            hundred.merge_branch(f"bench.ff{i}", MAIN)
            ff_times.append((time.perf_counter() - started) * 1000)
        results["merge_fast_forward_ms"] = statistics.median(ff_times)

        # Three-way: every branch changes one table while main changes another after the branch point.
        def three_way(i: int) -> None:
            hundred.merge_branch(f"bench.tw{i}", MAIN)

        for i in range(repeat):
            hundred.create_branch(f"bench.tw{i}", MAIN)
            hundred.import_data(f"t{10 + i}", str(small_csv), branch=f"bench.tw{i}")
            hundred.import_data(f"t{50 + i}", str(small_csv), branch=MAIN)  # main moves: no fast-forward
        results["merge_three_way_ms"] = median_ms(three_way, repeat)
        results["commits_in_catalog"] = len(hundred.get_commits(MAIN))

    print_report(results, args.rows)


def print_report(results: dict[str, float], rows: int) -> None:
    r = results
    lines = [
        ("create_branch, 1 table (10k rows)", f"{r['create_branch_1_table_10k_rows_ms']:.2f} ms"),
        (f"create_branch, 1 table ({rows:,} rows)", f"{r[f'create_branch_1_table_{rows}_rows_ms']:.2f} ms"),
        ("create_branch, 100 tables", f"{r['create_branch_100_tables_ms']:.2f} ms"),
        (
            f"import CSV, {rows:,} rows",
            f"{r['import_csv_rows_per_s']:,.0f} rows/s ({r['import_csv_s']:.2f} s), peak RSS"
            f" {r['import_csv_peak_rss_mib']:.0f} MiB (+{r['import_csv_rss_above_baseline_mib']:.0f} over baseline);"
            f" create_table {r['create_table_csv_s'] * 1000:.0f} ms",
        ),
        (
            f"import Parquet, {rows:,} rows",
            f"{r['import_parquet_rows_per_s']:,.0f} rows/s ({r['import_parquet_s']:.2f} s), peak RSS"
            f" {r['import_parquet_peak_rss_mib']:.0f} MiB"
            f" (+{r['import_parquet_rss_above_baseline_mib']:.0f} over baseline);"
            f" create_table {r['create_table_parquet_s'] * 1000:.0f} ms",
        ),
        ("merge_branch, fast-forward (100 tables)", f"{r['merge_fast_forward_ms']:.2f} ms"),
        ("merge_branch, three-way (100 tables)", f"{r['merge_three_way_ms']:.2f} ms"),
    ]
    width = max(len(name) for name, _ in lines)
    print(f"{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 60}")
    for name, value in lines:
        print(f"{name:<{width}}  {value}")
    print("BENCH_SUMMARY " + json.dumps({k: round(v, 3) for k, v in results.items()}, sort_keys=True))


if __name__ == "__main__":
    main()
