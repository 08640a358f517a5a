"""Benchmark of the audit (a script, not a pytest test).

    uv run python tests/benchmarks/bench_audit.py [--sizes 100000,1000000,10000000] [--no-gate] [--no-overhead]

For each size, a Titanic-shaped table (``demo_data.generate_titanic``) is imported into an embedded
lakehouse branch, then each contender runs in its own fresh interpreter, so that its peak RSS
(``VmHWM`` from /proc/self/status: ``ru_maxrss`` would include the parent's) is its own:

  floor  one DuckDB pass over the branch's Parquet files computing the suite's checks (counts of nulls,
         out-of-range and out-of-set values, distinct ids, row count; column names and types from the
         Parquet schema). It produces no GX result: it is what the checks cost on this machine.
  peer   plain GX 1.x as documented: the whole table read into pandas (``scan().to_pandas()``), then the
         stored checkpoint run on it.
  ours   the audit task's work alone: ``audit.audit_table`` (what ``wap.audit_branch_table`` runs, minus
         Prefect's task machinery, artifacts and events), in its default mode: from
         ``audit.PUSHDOWN_MIN_ROWS`` rows on, row metrics come from DuckDB over the Parquet files
         (``flows.audit.pushdown``); below, GX runs on pandas. ``row_metrics`` in the output says which ran.
  gate   the whole gate (write, audit, publish) as a Prefect flow on a warm Prefect test server
         (``prefect_test_harness``, warmed by one gate run on 891 rows first).

Times are of the work only: imports (pyiceberg's lazy ones too), the GX context and the Prefect server
are set up before the clock starts (``setup_s`` reports that cost); ``cpu_s`` is the CPU time of the
same span (less sensitive than wall time to other load on the machine). Subprocesses use a bytecode
cache in the temp dir even if PYTHONDONTWRITEBYTECODE is set, as an installed ``wap`` would.
``peak_mb`` is the subprocess's peak RSS, ``base_mb`` its RSS once everything is imported, ``arrow_mb``
the table's Arrow size.

Also measured: the gate's overhead on Titanic (891 rows) on a warm server (whole gate vs the sum of its
raw operations: branch, import, scan, validate, merge), and ``wap --help``.

Prints a table, then one line ``BENCH_AUDIT {json}`` per size and ``BENCH_AUDIT_OVERHEAD {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

BRANCH = "bench.audit"
TABLE = "titanic"
NAMESPACE = "bauplan"
CHECKPOINT = "titanic"
DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)
CONTENDERS = ("floor", "peer", "ours", "gate")


def rss_mb(key: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    """CPU seconds (user + system) of this process so far: less sensitive than wall time to a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_CPU_AT_START = 0.0


def start_clock() -> float:
    global _CPU_AT_START
    _CPU_AT_START = cpu_s()
    return time.perf_counter()


def emit(payload: dict[str, Any]) -> None:
    if "wall_s" in payload:
        payload["cpu_s"] = cpu_s() - _CPU_AT_START
    print("RESULT " + json.dumps(payload), flush=True)


# --------------------------------------------------------------------------------- workers (subprocesses)


def work_prepare(root: Path, rows: int) -> None:
    """Write the source Parquet file and a lakehouse with the table imported on BRANCH."""
    import pyarrow.parquet as pq

    from flows.demo.data import generate_titanic
    from flows.lakehouse import MAIN, connect

    table = generate_titanic(rows, seed=1)
    source = root / "source.parquet"
    pq.write_table(table, source)
    client = connect("local", root / "lakehouse")
    client.create_branch(BRANCH, MAIN)
    client.create_table(TABLE, str(source), branch=BRANCH, namespace=NAMESPACE)
    client.import_data(TABLE, str(source), branch=BRANCH, namespace=NAMESPACE)
    emit({"arrow_mb": table.nbytes / 2**20, "parquet_mb": source.stat().st_size / 2**20})


def _suite_expectations(gx_dir: Path) -> list[dict[str, Any]]:
    return json.loads((gx_dir / "expectations" / f"{CHECKPOINT}.json").read_text())["expectations"]


def floor_sql(expectations: list[dict[str, Any]], relation: str) -> tuple[str, list[str]]:
    """One SELECT computing every row-level check of the suite; returns (sql, labels)."""

    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def lit(value: Any) -> str:
        return "'" + value.replace("'", "''") + "'" if isinstance(value, str) else repr(value)

    parts, labels = ["count(*)"], ["rows"]
    for e in expectations:
        kind, kw = e["type"], e["kwargs"]
        col = kw.get("column")
        if col is None:
            continue
        c = q(col)
        if kind == "expect_column_values_to_not_be_null":
            expr = f"count(*) - count({c})"
        elif kind == "expect_column_values_to_be_unique":
            expr = f"count({c}) - count(DISTINCT {c})"
        elif kind == "expect_column_values_to_be_between":
            conds = []
            if kw.get("min_value") is not None:
                conds.append(f"{c} < {kw['min_value']!r}")
            if kw.get("max_value") is not None:
                conds.append(f"{c} > {kw['max_value']!r}")
            expr = f"count(*) FILTER (WHERE {' OR '.join(conds)})"
        elif kind == "expect_column_values_to_be_in_set":
            values = ", ".join(lit(v) for v in kw["value_set"])
            expr = f"count(*) FILTER (WHERE {c} NOT IN ({values}))"
        else:
            continue  # type expectations: answered from the Parquet schema
        parts.append(expr)
        labels.append(f"{kind}:{col}")
    return f"SELECT {', '.join(parts)} FROM {relation}", labels


def work_floor(root: Path, gx_dir: Path) -> None:
    import duckdb

    from flows.lakehouse import connect

    expectations = _suite_expectations(gx_dir)
    client = connect("local", root / "lakehouse")
    client.data_files(TABLE, ref=BRANCH, namespace=NAMESPACE)  # warm: pyiceberg's lazy imports (pandas...)
    base = rss_mb("VmRSS")
    started = start_clock()
    _, files = client.data_files(TABLE, ref=BRANCH, namespace=NAMESPACE)
    con = duckdb.connect(":memory:")
    relation = f"read_parquet({files!r})"
    schema = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()  # column names and types
    sql, labels = floor_sql(expectations, relation)
    counts = dict(zip(labels, con.execute(sql).fetchone(), strict=True))
    wall = time.perf_counter() - started
    emit({"wall_s": wall, "peak_mb": rss_mb(), "base_mb": base, "columns": len(schema), "rows": counts["rows"]})


def _gx_setup(gx_dir: Path) -> float:
    started = time.perf_counter()
    from flows import audit

    audit.get_context(gx_dir)
    import pandas  # noqa: F401  (GX imports it anyway)

    return time.perf_counter() - started


def work_peer(root: Path, gx_dir: Path) -> None:
    setup = _gx_setup(gx_dir)
    from flows.audit import run_checkpoint
    from flows.lakehouse import connect

    client = connect("local", root / "lakehouse")
    client.data_files(TABLE, ref=BRANCH, namespace=NAMESPACE)  # warm: pyiceberg's lazy imports
    base = rss_mb("VmRSS")
    started = start_clock()
    df = client.scan(TABLE, ref=BRANCH, namespace=NAMESPACE).to_pandas()
    read = time.perf_counter() - started
    result = run_checkpoint(df, CHECKPOINT, gx_dir=gx_dir, run_name="bench-peer")
    wall = time.perf_counter() - started
    emit(
        {
            "wall_s": wall,
            "read_s": read,
            "peak_mb": rss_mb(),
            "base_mb": base,
            "setup_s": setup,
            "success": result.success,
            "failed": sorted(f"{e.expectation_type}:{e.column}" for e in result.failed),
        }
    )


def work_ours(root: Path, gx_dir: Path) -> None:
    setup = _gx_setup(gx_dir)
    from flows.audit import audit_table
    from flows.lakehouse import connect

    client = connect("local", root / "lakehouse")
    client.data_files(TABLE, ref=BRANCH, namespace=NAMESPACE)  # warm: pyiceberg's lazy imports
    base = rss_mb("VmRSS")
    started = start_clock()
    result = audit_table(
        client, TABLE, ref=BRANCH, namespace=NAMESPACE, checkpoint=CHECKPOINT, gx_dir=gx_dir, run_name="bench-ours"
    )
    wall = time.perf_counter() - started
    emit(
        {
            "wall_s": wall,
            "peak_mb": rss_mb(),
            "base_mb": base,
            "setup_s": setup,
            "success": result.success,
            "failed": sorted(f"{e.expectation_type}:{e.column}" for e in result.failed),
            "row_metrics": result.row_metrics,
        }
    )


def _titanic_source(directory: Path) -> Path:
    import pyarrow.parquet as pq

    from flows.demo.data import generate_titanic

    path = directory / "titanic891.parquet"
    if not path.exists():
        pq.write_table(generate_titanic(891, seed=0), path)
    return path


def _run_gate(source: Path, lakehouse: Path) -> float:
    from flows.gate import run_gate

    started = time.perf_counter()
    outcome = run_gate("titanic", source=str(source), lakehouse=str(lakehouse), backend="local")
    wall = time.perf_counter() - started
    if not outcome.published:
        raise RuntimeError(f"gate did not publish: {outcome}")
    return wall


def _harness():
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    return prefect_test_harness(server_startup_timeout=180)


def work_gate(root: Path, gx_dir: Path) -> None:
    os.environ["WAP_GX_DIR"] = str(gx_dir)
    started = time.perf_counter()
    with _harness():
        import flows.gate  # noqa: F401

        _gx_setup(gx_dir)
        warm_dir = Path(tempfile.mkdtemp(prefix="bench-warm-", dir=root))
        _run_gate(_titanic_source(warm_dir), warm_dir / "lakehouse")  # warm: server, Prefect client, GX
        setup = time.perf_counter() - started
        base = rss_mb("VmRSS")
        start_clock()
        wall = _run_gate(root / "source.parquet", root / "gate-lakehouse")
        emit({"wall_s": wall, "peak_mb": rss_mb(), "base_mb": base, "setup_s": setup})


def work_overhead(root: Path, gx_dir: Path) -> None:
    """Whole gate vs the sum of its raw operations, on 891 rows, warm server."""
    os.environ["WAP_GX_DIR"] = str(gx_dir)
    source = _titanic_source(root)
    with _harness():
        from flows.audit import run_checkpoint, table_to_dataframe
        from flows.lakehouse import MAIN, connect

        _gx_setup(gx_dir)
        _run_gate(source, root / "warm-lakehouse")  # warm
        gates, raws = [], []
        for i in range(5):
            gates.append(_run_gate(source, root / f"gate-{i}"))
            client = connect("local", root / f"raw-{i}")
            ops: dict[str, float] = {}
            t = time.perf_counter()
            client.create_branch(BRANCH, MAIN)
            ops["branch"] = time.perf_counter() - t
            t = time.perf_counter()
            client.create_table(TABLE, str(source), branch=BRANCH, namespace=NAMESPACE)
            client.import_data(TABLE, str(source), branch=BRANCH, namespace=NAMESPACE)
            ops["import"] = time.perf_counter() - t
            t = time.perf_counter()
            arrow = client.scan(TABLE, ref=BRANCH, namespace=NAMESPACE)
            ops["scan"] = time.perf_counter() - t
            t = time.perf_counter()
            result = run_checkpoint(table_to_dataframe(arrow), CHECKPOINT, gx_dir=gx_dir, run_name="bench-raw")
            ops["validate"] = time.perf_counter() - t
            assert result.success
            t = time.perf_counter()
            client.merge_branch(BRANCH, MAIN)
            client.delete_branch(BRANCH)
            ops["merge"] = time.perf_counter() - t
            raws.append(ops)
    gate = sorted(gates)[len(gates) // 2]
    raw_sums = sorted(sum(o.values()) for o in raws)
    raw = raw_sums[len(raw_sums) // 2]
    median_ops = {k: sorted(o[k] for o in raws)[len(raws) // 2] for k in raws[0]}
    emit({"gate_s": gate, "raw_s": raw, "ratio": gate / raw, "ops_s": median_ops})


WORKERS = {"floor": work_floor, "peer": work_peer, "ours": work_ours, "gate": work_gate, "overhead": work_overhead}


# ------------------------------------------------------------------------------------------------- driver


# Bytecode cache for the subprocesses. With PYTHONDONTWRITEBYTECODE set and no __pycache__ in the venv,
# every interpreter recompiles pandas, GX and Prefect from source (seconds per process): not what an
# installed `wap` does. The cache lives outside the repo and the venv.
PYCACHE = Path(tempfile.gettempdir()) / "wap-bench-pycache"


def worker_env() -> dict[str, str]:
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def run_worker(mode: str, *args: str, timeout: float = 1800) -> dict[str, Any]:
    env = worker_env()
    done = subprocess.run(
        [sys.executable, __file__, "--worker", mode, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} worker failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def wap_help_s(repeat: int = 3) -> float:
    wap = Path(sys.executable).with_name("wap")
    command = [str(wap)] if wap.exists() else [sys.executable, "-m", "flows.cli"]
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([*command, "--help"], capture_output=True, check=True, cwd=REPO, env=worker_env())
        timings.append(time.perf_counter() - started)
    return min(timings)


def bench_size(rows: int, workdir: Path, gx_dir: Path, contenders: list[str]) -> dict[str, Any]:
    root = workdir / f"rows{rows}"
    root.mkdir()
    summary: dict[str, Any] = {"rows": rows}
    started = time.perf_counter()
    summary.update(run_worker("prepare", str(root), str(rows)))
    summary["prepare_s"] = time.perf_counter() - started
    for name in contenders:
        summary[name] = run_worker(name, str(root), str(gx_dir))
        print(
            f"  {rows:>10,} {name:<6} {summary[name]['wall_s']:8.2f} s  peak {summary[name]['peak_mb']:7.0f} MB"
            f"  {summary[name].get('row_metrics', '')}",
            flush=True,
        )
    floor = summary.get("floor", {}).get("wall_s")
    for name in contenders:
        if floor:
            summary[name]["x_floor"] = summary[name]["wall_s"] / floor
    shutil.rmtree(root, ignore_errors=True)
    return summary


def print_table(results: list[dict[str, Any]], contenders: list[str]) -> None:
    header = (
        f"{'rows':>12} {'contender':<8} {'wall s':>8} {'cpu s':>7} {'x floor':>8} {'peak MB':>8} {'base MB':>8}"
        f" {'arrow MB':>9}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for r in results:
        for name in contenders:
            m = r[name]
            x = f"{m['x_floor']:.2f}" if "x_floor" in m else "-"
            print(
                f"{r['rows']:>12,} {name:<8} {m['wall_s']:>8.2f} {m.get('cpu_s', float('nan')):>7.2f} {x:>8}"
                f" {m['peak_mb']:>8.0f} {m['base_mb']:>8.0f} "
                f"{r['arrow_mb']:>9.0f}"
            )
    by_rows = {r["rows"]: r for r in results}
    if 1_000_000 in by_rows and 10_000_000 in by_rows:
        print("\ngrowth 1M -> 10M (wall):")
        for name in contenders:
            growth = by_rows[10_000_000][name]["wall_s"] / by_rows[1_000_000][name]["wall_s"]
            print(f"  {name:<6} {growth:5.1f}x")
            by_rows[10_000_000][name]["growth_1m_10m"] = growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated row counts")
    parser.add_argument("--no-gate", action="store_true", help="skip the whole-gate runs (they start Prefect)")
    parser.add_argument("--no-overhead", action="store_true", help="skip the Titanic gate-overhead figure")
    parser.add_argument("--only", default=None, help="comma-separated contenders (floor,peer,ours,gate)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        mode, *rest = args.worker
        if mode == "prepare":
            work_prepare(Path(rest[0]), int(rest[1]))
        else:
            WORKERS[mode](Path(rest[0]), Path(rest[1]))
        return

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    contenders = args.only.split(",") if args.only else [c for c in CONTENDERS if not (args.no_gate and c == "gate")]
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        workdir = Path(tmp)
        gx_dir = workdir / "gx"
        shutil.copytree(REPO / "gx", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
        results = []
        for rows in sizes:
            results.append(bench_size(rows, workdir, gx_dir, contenders))
        print_table(results, contenders)
        for r in results:
            print("BENCH_AUDIT " + json.dumps(r, sort_keys=True))
        if not args.no_overhead:
            overhead_root = workdir / "overhead"
            overhead_root.mkdir()
            overhead = run_worker("overhead", str(overhead_root), str(gx_dir))
            overhead["wap_help_s"] = wap_help_s()
            ops = ", ".join(f"{k} {v:.3f}" for k, v in overhead["ops_s"].items())
            print(
                f"\ngate overhead on Titanic (891 rows, warm server): gate {overhead['gate_s']:.2f} s vs raw ops "
                f"{overhead['raw_s']:.2f} s = {overhead['ratio']:.2f}x  ({ops})"
                f"\nwap --help: {overhead['wap_help_s']:.2f} s"
            )
            print("BENCH_AUDIT_OVERHEAD " + json.dumps(overhead, sort_keys=True))


if __name__ == "__main__":
    main()
