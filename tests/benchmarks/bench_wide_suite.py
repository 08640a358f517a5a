"""Benchmark of the audit of a wide suite (a script, not a pytest test): the titanic suites plus one rule of each
family the pushdown answers beyond the map metrics, against one DuckDB process computing the same checks.

    nice -n 19 uv run python tests/benchmarks/bench_wide_suite.py [--sizes 1000000,10000000] [--dir /tmp]
        [--repeats 2]

For each size, a titanic-shaped Parquet source (``bench_100m.write_source``: 1M-row chunks, ids 1..N) is imported
into the embedded lakehouse's ``main``, and a copy of the GX project gets the ``titanic`` suite widened by
``WIDE_RULES``: column min/max/median/sum/mean, the three distinct-value set checks, the unique value count and
proportion, the most common value (``flows/audit/pushdown_aggregates.py``), and a regex and a value-length rule
(the map families of ``pushdown.py``). Then, each in a fresh process, ``--repeats`` times, alternating:

  floor   one DuckDB pass over the table's Parquet files computing the same checks (``bench_100m.floor_sql``'s
          counts of nulls, out-of-range and out-of-set values, distinct ids, plus every widened rule's aggregate:
          min, max, median, sum, avg, the distinct values, DuckDB's ``mode``, the regex and length counts), DuckDB
          bounded as the audit bounds it (``BoundedDuckDB``).
  ours    ``audit.audit_table`` on main, the shipped ``titanic`` checkpoint (both suites) as the gate's audit task
          runs it; its ``row_metrics`` must say ``duckdb`` (the pushdown), else the run stops and says why.

``cpu_s`` is user + system CPU of the measured span (DuckDB's threads included); the best of the repeats is
compared (these machines are shared). Prints a table, then one ``BENCH_WIDE {json}`` line per size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from bench_100m import _COMMON, _env, _result, _run, write_source  # noqa: E402

TABLE, NAMESPACE = "titanic", "bauplan"
DEFAULT_SIZES = (1_000_000, 10_000_000)


def _rule(kind: str, column: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": f"expect_column_{kind}", "kwargs": {"column": column, **kwargs}}


# One rule of each family, on the titanic columns (int64: Pclass, SibSp, Parch; float64: Age, Fare; strings).
WIDE_RULES: list[dict[str, Any]] = [
    _rule("min_to_be_between", "Age", min_value=0, max_value=5),
    _rule("max_to_be_between", "Fare", min_value=100, max_value=1000),
    _rule("median_to_be_between", "Age", min_value=10, max_value=60),
    _rule("sum_to_be_between", "SibSp", min_value=0),
    _rule("mean_to_be_between", "Parch", min_value=0, max_value=2),
    _rule("distinct_values_to_be_in_set", "Embarked", value_set=["C", "Q", "S"]),
    _rule("distinct_values_to_contain_set", "Sex", value_set=["male", "female"]),
    _rule("distinct_values_to_equal_set", "Pclass", value_set=[1, 2, 3]),
    _rule("unique_value_count_to_be_between", "Embarked", min_value=1, max_value=3),
    _rule("proportion_of_unique_values_to_be_between", "Sex", max_value=0.01),
    _rule("most_common_value_to_be_in_set", "Embarked", value_set=["S"]),
    _rule("values_to_match_regex", "Name", regex="^[A-Z]"),  # pushdown.py's map families (helper B's)
    _rule("value_lengths_to_be_between", "Ticket", min_value=1, max_value=40),
]

# The same checks' aggregates, beside bench_100m.floor_sql's, in the floor's one SELECT.
WIDE_FLOOR = [
    'min("Age")',
    'max("Fare")',
    'median("Age")',
    'sum("SibSp")',
    'avg("Parch")',
    'list(DISTINCT "Embarked")',
    'list(DISTINCT "Sex")',
    'list(DISTINCT "Pclass")',
    'count(DISTINCT "Sex")',
    'mode("Embarked")',
    """count(*) FILTER (WHERE NOT regexp_matches("Name", '^[A-Z]'))""",
    'count(*) FILTER (WHERE length("Ticket") NOT BETWEEN 1 AND 40)',
]

_FLOOR = (
    _COMMON
    + """
sys.path.insert(0, sys.argv[3])
from bench_100m import floor_sql
from bench_wide_suite import WIDE_FLOOR
from flows.lakehouse.sql import BoundedDuckDB
started, cpu0 = time.perf_counter(), cpu()
_, files = client.data_files("titanic", ref="main", namespace="bauplan")
with BoundedDuckDB() as con:
    relation = "read_parquet([" + ", ".join(repr(f) for f in files) + "])"
    con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()  # column names and types
    sql, labels = floor_sql(sys.argv[2], relation)
    head, tail = sql.rsplit(f" FROM {relation}", 1)
    row = con.execute(f"{head}, {', '.join(WIDE_FLOOR)} FROM {relation}{tail}").fetchone()
wall, spent = time.perf_counter() - started, cpu() - cpu0
print("RESULT " + json.dumps({"wall_s": wall, "cpu_s": spent, "peak_mb": peak(), "rows": row[0]}))
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
fallback = [s.row_metrics_fallback for s in result.suites if s.row_metrics_fallback]
print("RESULT " + json.dumps({"wall_s": wall, "cpu_s": spent, "peak_mb": peak(), "success": result.success,
                              "row_metrics": result.row_metrics, "fallback": fallback,
                              "evaluated": result.statistics["evaluated"]}))
"""
)


def widen(gx_dir: Path) -> int:
    """Add WIDE_RULES to the copied project's titanic suite; the suite's new size."""
    path = gx_dir / "expectations" / "titanic.json"
    suite = json.loads(path.read_text())
    suite["expectations"] += [{**rule, "meta": {}} for rule in WIDE_RULES]
    path.write_text(json.dumps(suite, indent=2))
    return len(suite["expectations"])


def measure(rows: int, work: Path, gx_dir: Path, repeats: int) -> dict[str, Any]:
    from flows.lakehouse import MAIN, connect

    source, lake = work / f"source-{rows}.parquet", work / f"lake-{rows}"
    write_source(source, rows)
    client = connect("local", lake)
    client.create_table(TABLE, str(source), branch=MAIN, namespace=NAMESPACE)
    client.import_data(TABLE, str(source), branch=MAIN, namespace=NAMESPACE)
    source.unlink()
    env = _env(work)
    runs: dict[str, list[dict[str, Any]]] = {"floor": [], "ours": []}
    for _ in range(repeats):
        for name, script, args in (
            ("floor", _FLOOR, [str(lake), str(gx_dir), str(HERE)]),
            ("ours", _OURS, [str(lake), str(gx_dir)]),
        ):
            done, _, _ = _run([sys.executable, "-c", script, *args], env)
            figures = _result(done, name)
            print(f"  {rows:>12,} {name:<5} {json.dumps(figures)}", flush=True)
            if name == "ours" and figures["row_metrics"] != "duckdb":
                raise SystemExit(f"the audit left the pushdown: {figures['fallback']}")
            runs[name].append(figures)
    shutil.rmtree(lake)
    best = {name: min(r, key=lambda f: f["cpu_s"]) for name, r in runs.items()}
    return {"rows": rows, **best, "x_floor_cpu": best["ours"]["cpu_s"] / best["floor"]["cpu_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES))
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wap-bench-wide-", dir=args.dir))
    try:
        gx_dir = Path(shutil.copytree(REPO / "gx", work / "gx", ignore=shutil.ignore_patterns("uncommitted")))
        rules = widen(gx_dir)
        print(f"titanic suite widened to {rules} rules (+{len(WIDE_RULES)}), and titanic_table; best of {args.repeats}")
        results = [measure(int(s), work, gx_dir, args.repeats) for s in args.sizes.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'rows':>12} {'path':>7} {'rules':>6} {'floor cpu':>10} {'floor wall':>10} {'ours cpu':>9}")
    for r in results:
        ours, floor = r["ours"], r["floor"]
        print(
            f"{r['rows']:>12,} {ours['row_metrics']:>7} {ours['evaluated']:>6} {floor['cpu_s']:>9.2f}s"
            f" {floor['wall_s']:>9.2f}s {ours['cpu_s']:>8.2f}s  ours wall {ours['wall_s']:.2f}s"
            f"  x floor (cpu) {r['x_floor_cpu']:.2f}"
        )
    for r in results:
        print("BENCH_WIDE " + json.dumps(r))


if __name__ == "__main__":
    main()
