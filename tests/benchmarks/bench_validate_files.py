"""Benchmark of `wap validate titanic --source FILE.parquet` (a script, not a pytest test).

    .venv/bin/python tests/benchmarks/bench_validate_files.py [--rows 10000000] [--dir /tmp]

A titanic-shaped Parquet file of ``--rows`` rows (``generate_titanic``, 1M rows a row group) and a 1-row file of the
same schema; every contender is a whole process, timed from outside (wall time), after one unmeasured warm-up
run of ``wap validate`` (bytecode, OS file caches):

  floor   one DuckDB process (python -c: import duckdb, one pass computing the suite's row checks over the file,
          ``bench_audit.floor_sql``): what the checks cost on this machine, start-up included.
  ours    ``wap validate titanic --source FILE`` in its default mode (row metrics from DuckDB over the file).
  fixed   the same command on the 1-row file: start-up, GX, data docs, everything no row count changes.
  pandas  the same command with WAP_AUDIT_PUSHDOWN=never (the file read into pandas, as before).

Prints the figures and ``marginal = (ours - fixed) / floor`` (target: at most 2x), then ``BENCH_VALIDATE {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_audit import floor_sql  # noqa: E402


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, env={**os.environ, **env}, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    import pyarrow.parquet as pq

    from flows.demo.data import generate_titanic

    work = Path(tempfile.mkdtemp(prefix="wap-bench-validate-", dir=args.dir))
    try:
        gx_dir = work / "gx"
        shutil.copytree(REPO / "gx", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
        big, one = work / "big.parquet", work / "one.parquet"
        with pq.ParquetWriter(big, generate_titanic(1).schema) as writer:
            for start in range(0, args.rows, 1_000_000):
                count = min(1_000_000, args.rows - start)
                writer.write_table(generate_titanic(count, seed=start, first_id=start + 1))
        pq.write_table(generate_titanic(1), one)
        expectations = json.loads((gx_dir / "expectations" / "titanic.json").read_text())["expectations"]
        sql, _ = floor_sql(expectations, f"read_parquet('{big}')")
        floor_code = f"import duckdb; print(duckdb.connect().execute({sql!r}).fetchone())"
        wap = [str(REPO / ".venv" / "bin" / "wap"), "validate", "titanic", "--lakehouse", str(work / "no-lake")]
        env = {"WAP_GX_DIR": str(gx_dir)}
        timed([*wap, "--source", str(one)], env)  # warm-up: bytecode and OS caches, not measured
        figures = {
            "floor_s": timed([sys.executable, "-c", floor_code], env),
            "fixed_s": timed([*wap, "--source", str(one)], env),
            "ours_s": timed([*wap, "--source", str(big)], env),
            "pandas_s": timed([*wap, "--source", str(big)], {**env, "WAP_AUDIT_PUSHDOWN": "never"}),
        }
        marginal = (figures["ours_s"] - figures["fixed_s"]) / figures["floor_s"]
        pandas_marginal = (figures["pandas_s"] - figures["fixed_s"]) / figures["floor_s"]
        print(f"rows {args.rows:,}")
        print(f"{'floor (DuckDB process)':28} {figures['floor_s']:7.2f} s")
        print(f"{'wap validate, 1-row file':28} {figures['fixed_s']:7.2f} s")
        print(f"{'wap validate (DuckDB)':28} {figures['ours_s']:7.2f} s   marginal {marginal:.2f}x the floor")
        print(f"{'wap validate (pandas)':28} {figures['pandas_s']:7.2f} s   marginal {pandas_marginal:.2f}x the floor")
        result = {"rows": args.rows, **figures, "marginal_x": marginal, "pandas_marginal_x": pandas_marginal}
        print("BENCH_VALIDATE " + json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
