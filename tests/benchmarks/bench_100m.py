"""Benchmark of the whole gate at scale on the embedded lakehouse, replace mode (a script, not a pytest test).

    nice -n 19 uv run python tests/benchmarks/bench_100m.py [--sizes 1000000,10000000,100000000] [--dir /tmp]
        [--no-rerun]

For each size, a titanic-shaped Parquet source (``flows.demo.data.generate_titanic``) is streamed to one file
in row groups of ``CHUNK`` rows, each chunk with its own PassengerId range (ids 1..N, so the suite's uniqueness
rule passes); the source is never held in memory whole. Then, each in a fresh process so that its figures are
its own:

  gate    ``wap run bench_titanic --source <file> --lakehouse <dir>``, the real CLI: its own temporary Prefect
          server (on a database migrated beforehand), the dataset declared in a generated datasets.yml
          (``WAP_DATASETS``) with the shipped ``titanic`` checkpoint (row count 1..100M: 100M passes).
          ``write_s``/``audit_s``/``publish_s``: each task run's wall time, from Prefect's own records (the
          server's database in ``PREFECT_HOME``); ``gate_s`` the whole process; ``gate_peak_mb`` the gate
          process's peak RSS (``VmHWM``), ``tree_peak_mb`` the largest of it and its children (the temporary
          Prefect server: ``ru_maxrss`` of ``wait4``).
  rerun   the same gate again on that lakehouse: a replace of the published table by a source that fits it
          (the same Iceberg table emptied, then the new rows), ``--no-rerun`` skips it.
  floor   one DuckDB pass over the published table's Parquet files computing the same checks as both suites
          (counts of nulls, out-of-range and out-of-set values, distinct ids, row count, the Fare maximum the
          table suite's drift rule is bounded by), DuckDB bounded as the audit bounds it (``BoundedDuckDB``).
  ours    ``audit.audit_table`` on main as the gate's audit task runs it in replace mode (GX, both suites, row
          metrics pushed down to DuckDB), minus Prefect's task machinery.

``*_cpu_s`` is user + system CPU time of the measured span (DuckDB's threads included): on these shared machines
the ratio of CPU times is the steadier comparison. Prints a table, then one ``BENCH_100M {json}`` line per size.
The data lives under ``--dir`` (default: the system's temp dir) and is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

CHUNK = 1_000_000
DATASET = "bench_titanic"
TABLE, NAMESPACE, CHECKPOINT = "titanic", "bauplan", "titanic"
DEFAULT_SIZES = (1_000_000, 10_000_000, 100_000_000)

# The gate as `wap` runs it, reporting its own peak RSS on the way out.
from bench_append import _PEAK as _GATE  # noqa: E402  (after sys.path: the benchmarks' folder is on it as a script's)

_COMMON = """
import json, resource, sys, time
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
def peak():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
from flows.lakehouse import connect
client = connect("local", sys.argv[1])
client.data_files("titanic", ref="main", namespace="bauplan")  # warm: pyiceberg's lazy imports
"""

_FLOOR = (
    _COMMON
    + """
sys.path.insert(0, sys.argv[3])
from bench_100m import floor_sql
from flows.lakehouse.sql import BoundedDuckDB
started, cpu0 = time.perf_counter(), cpu()
_, files = client.data_files("titanic", ref="main", namespace="bauplan")
with BoundedDuckDB() as con:
    relation = "read_parquet([" + ", ".join(repr(f) for f in files) + "])"
    con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()  # column names and types
    sql, labels = floor_sql(sys.argv[2], relation)
    counts = dict(zip(labels, con.execute(sql).fetchone(), strict=True))
wall, spent = time.perf_counter() - started, cpu() - cpu0
print("RESULT " + json.dumps({"wall_s": wall, "cpu_s": spent, "peak_mb": peak(), "rows": counts["rows"]}))
"""
)

_OURS = (
    _COMMON
    + """
from flows.audit import audit_table, get_context
get_context(sys.argv[2])
started, cpu0 = time.perf_counter(), cpu()
result = audit_table(client, "titanic", ref="main", namespace="bauplan", checkpoint="titanic", gx_dir=sys.argv[2])
wall, spent = time.perf_counter() - started, cpu() - cpu0
print("RESULT " + json.dumps({"wall_s": wall, "cpu_s": spent, "peak_mb": peak(), "success": result.success,
                              "row_metrics": result.row_metrics}))
"""
)


def floor_sql(gx_dir: str, relation: str) -> tuple[str, list[str]]:
    """One SELECT computing every row-level check of the checkpoint's suites, each once, and the Fare maximum the
    table suite's drift rule is bounded by (a first run's table is its own baseline); (sql, labels)."""
    from bench_audit import floor_sql as checks

    expectations: list[dict[str, Any]] = []
    for suite in ("titanic", "titanic_table"):
        for e in json.loads((Path(gx_dir) / "expectations" / f"{suite}.json").read_text())["expectations"]:
            kwargs = {k: v for k, v in e["kwargs"].items() if not isinstance(v, dict)}  # drop $PARAMETER bounds
            known = {"type": e["type"], "kwargs": kwargs}
            unbounded = e["type"] == "expect_column_values_to_be_between" and not {"min_value", "max_value"} & set(
                kwargs
            )
            if known not in expectations and not unbounded:  # the table suite repeats the uniqueness rule
                expectations.append(known)
    sql, labels = checks(expectations, relation)
    return sql.replace("SELECT count(*)", 'SELECT count(*), max("Fare")', 1), [labels[0], "fare_max", *labels[1:]]


def write_source(path: Path, rows: int) -> float:
    """A titanic-shaped Parquet file of `rows` rows, written CHUNK rows at a time (one row group each)."""
    import pyarrow.parquet as pq

    from flows.demo.data import TITANIC_SCHEMA, generate_titanic

    started = time.perf_counter()
    with pq.ParquetWriter(path, TITANIC_SCHEMA) as writer:
        done = 0
        while done < rows:
            n = min(CHUNK, rows - done)
            writer.write_table(generate_titanic(n, seed=done + 1, first_id=done + 1), row_group_size=CHUNK)
            done += n
    return time.perf_counter() - started


def _env(work: Path) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env |= {"GX_ANALYTICS_ENABLED": "false", "WAP_DATASETS": str(work / "datasets.yml")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed wap: a bytecode cache, outside the repo
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "wap-bench-pycache")
    return env


def _run(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run to completion; (result, wall seconds, peak RSS in MB of the process or any of its children)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(command, process.returncode, out.read(), err.read())
    return done, wall, usage.ru_maxrss / 1024


def _result(done: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def _task_seconds(work: Path) -> dict[str, float]:
    """Wall time of each task of the newest flow run, from the temporary server's database."""
    with sqlite3.connect(work / "prefect" / "prefect.db") as db:
        (flow_run,) = db.execute("SELECT id FROM flow_run ORDER BY created DESC LIMIT 1").fetchone()
        rows = db.execute(
            "SELECT name, (julianday(end_time) - julianday(start_time)) * 86400 FROM task_run WHERE flow_run_id = ?",
            (flow_run,),
        ).fetchall()
    seconds: dict[str, float] = {}
    for name, spent in rows:
        step = name.split(" ", 1)[0]  # "write titanic to <branch>", "audit ...", "publish ..."
        seconds[f"{step}_s"] = seconds.get(f"{step}_s", 0.0) + (spent or 0.0)
    return seconds


def _gate(work: Path, source: Path, lake: Path) -> dict[str, Any]:
    command = [sys.executable, "-c", _GATE, "run", DATASET, "--source", str(source), "--lakehouse", str(lake)]
    done, wall, tree_peak = _run(command, _env(work))
    if done.returncode != 0 or "published" not in done.stdout:
        raise SystemExit(f"gate exit {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    peak = next(float(x.split()[1]) for x in done.stderr.splitlines() if x.startswith("PEAK_MB"))
    return {"gate_s": wall, "gate_peak_mb": peak, "tree_peak_mb": tree_peak, **_task_seconds(work)}


def measure(rows: int, work: Path, gx_dir: Path, *, rerun: bool) -> dict[str, Any]:
    source, lake = work / f"source-{rows}.parquet", work / f"lake-{rows}"
    figures: dict[str, Any] = {"rows": rows, "source_s": write_source(source, rows)}
    figures["source_mb"] = source.stat().st_size / 2**20
    figures["gate"] = _gate(work, source, lake)
    print(f"  {rows:>12,} gate  {json.dumps(figures['gate'])}", flush=True)
    if rerun:
        figures["rerun"] = _gate(work, source, lake)
        print(f"  {rows:>12,} rerun {json.dumps(figures['rerun'])}", flush=True)
    env = _env(work)
    for name, script, args in (
        ("floor", _FLOOR, [str(lake), str(gx_dir), str(Path(__file__).parent)]),
        ("ours", _OURS, [str(lake), str(gx_dir)]),
    ):
        done, _, _ = _run([sys.executable, "-c", script, *args], env)
        figures[name] = _result(done, name)
        print(f"  {rows:>12,} {name:<5} {json.dumps(figures[name])}", flush=True)
    source.unlink()
    shutil.rmtree(lake)
    return figures


def print_table(results: list[dict[str, Any]]) -> None:
    print("\nthe gate (wap run, replace mode, its own temporary Prefect server), and the audit alone vs the floor")
    head = (
        f"{'rows':>12} {'write s':>8} {'audit s':>8} {'publish s':>9} {'gate s':>8} {'gate MB':>8} {'tree MB':>8}"
        f" {'rerun MB':>8} {'floor cpu':>9} {'ours cpu':>9} {'x floor':>8} {'floor MB':>8} {'ours MB':>8}"
    )
    print(head + "\n" + "-" * len(head))
    for r in results:
        g, f, o = r["gate"], r["floor"], r["ours"]
        rerun = f"{r['rerun']['gate_peak_mb']:>8.0f}" if "rerun" in r else f"{'-':>8}"
        print(
            f"{r['rows']:>12,} {g.get('write_s', 0):>8.1f} {g.get('audit_s', 0):>8.1f} {g.get('publish_s', 0):>9.2f}"
            f" {g['gate_s']:>8.1f} {g['gate_peak_mb']:>8.0f} {g['tree_peak_mb']:>8.0f} {rerun}"
            f" {f['cpu_s']:>9.2f} {o['cpu_s']:>9.2f} {o['cpu_s'] / f['cpu_s']:>8.2f} {f['peak_mb']:>8.0f}"
            f" {o['peak_mb']:>8.0f}"
        )
    by_rows = {r["rows"]: r for r in results}
    for small, large in ((1_000_000, 10_000_000), (10_000_000, 100_000_000)):
        if small in by_rows and large in by_rows:
            a, b = by_rows[small], by_rows[large]
            print(
                f"growth {small:,} -> {large:,} rows (CPU): ours {b['ours']['cpu_s'] / a['ours']['cpu_s']:.1f}x,"
                f" floor {b['floor']['cpu_s'] / a['floor']['cpu_s']:.1f}x;"
                f" gate peak RSS {b['gate']['gate_peak_mb'] / a['gate']['gate_peak_mb']:.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated row counts")
    parser.add_argument("--dir", default=None, help="where the data goes (default: the system's temp dir)")
    parser.add_argument("--no-rerun", action="store_true", help="skip the second gate run (replace of a table)")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="wap-bench-100m-", dir=args.dir) as folder:
        work = Path(folder)
        gx_dir = work / "gx"
        shutil.copytree(REPO / "gx", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
        declaration = {
            "source": "given-by-source-option.parquet",
            "table": TABLE,
            "namespace": NAMESPACE,
            "checkpoint": CHECKPOINT,
        }
        declaration["mode"] = "replace"
        lines = ["datasets:", f"  {DATASET}:", *(f"    {k}: {v}" for k, v in declaration.items())]
        (work / "datasets.yml").write_text("\n".join(lines) + "\n")
        env = _env(work) | {"WAP_GX_DIR": str(gx_dir)}
        migrate = [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"]
        subprocess.run(migrate, check=True, capture_output=True, env=env)  # so no gate run pays the migrations
        os.environ["WAP_GX_DIR"] = str(gx_dir)
        results = [measure(rows, work, gx_dir, rerun=not args.no_rerun) for rows in sizes]
    print_table(results)
    for r in results:
        print("BENCH_100M " + json.dumps(r, sort_keys=True))


if __name__ == "__main__":
    main()
