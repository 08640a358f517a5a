"""Benchmark of an append: a batch appended to tables of growing size (a script, not a pytest test).

    uv run python tests/benchmarks/bench_append.py [--batch 1000000] [--tables 0,10000000,100000000]

For each table size, main gets a titanic-shaped table of that many rows (imported in chunks of 1M rows, ids
1..N), published as the gate publishes it: its merge commit records what its audit proves, the ids distinct
(``flows.audit.proof``; true here by construction). A branch appends a batch of ``--batch`` new passengers
(ids N+1..). Then, each in a fresh interpreter so that its peak RSS (``VmHWM``) is its own:

  audit   ``audit.audit_table`` as the gate's audit task runs it (``published=main@base, appended=True``):
          the batch suite on the batch's files, the table suite on main's rows plus them, main's facts as
          suite parameters. Reported per suite: ``batch_s`` and ``table_s`` (reading or computing the row
          metrics, and GX's validation), which path each took, and the audit's peak RSS; the medians of
          ``REPEATS`` audits in the one process.
  grouped the same audit against the same files on a ref whose history has no proof (``bench.unproven``):
          the table's uniqueness grouped over every row (``grouped_table_s``, ``grouped_peak_mb``).
  gate    the whole gate, ``wap run titanic --mode append`` as a process (its own temporary Prefect server
          on a database migrated beforehand, imports included): ``gate_s`` and its ``gate_peak_mb``.

Printed side by side, with the ratio of each figure to the same batch into an empty table (size 0): the
batch audit should stay flat as the table grows (it reads only the batch's files); the table audit reads
main's ids once (the semi-join) and its other rules' columns. Ends with one ``BENCH_APPEND {json}`` line per size.
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

CHUNK = 1_000_000
REPEATS = 3  # audits per process; the medians are printed (these machines are noisy)

_AUDIT = """
import json, statistics, sys, time
from flows.audit import audit_table, get_context
from flows.lakehouse import connect
get_context()
client = connect("local", sys.argv[1])
runs = []
for _ in range(int(sys.argv[4])):  # the first includes one-off costs (GX's metric registry, DuckDB start-up)
    started, cpu = time.perf_counter(), time.process_time()
    result = audit_table(client, "titanic", ref=sys.argv[2], checkpoint="titanic", published=sys.argv[3], appended=True)
    suites = {s.validates: s for s in result.suites}
    runs.append({"audit_s": time.perf_counter() - started, "audit_cpu_s": time.process_time() - cpu,
                 "batch_s": suites["batch"].seconds, "table_s": suites["table"].seconds})
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print("RESULT " + json.dumps({
    "success": result.success, "audit_peak_mb": peak, "repeats": len(runs),
    **{key: statistics.median(r[key] for r in runs) for key in runs[0]},
    "batch_path": suites["batch"].row_metrics, "table_path": suites["table"].row_metrics,
    "relied_on_proof": result.relied_proof is not None,
}))
"""

_PEAK = """
import resource, runpy, sys
sys.argv = ["wap", *sys.argv[1:]]
try:
    runpy.run_module("flows.cli", run_name="__main__")
finally:
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
    print(f"PEAK_MB {peak:.0f}", file=sys.stderr)
"""


def _load(lake: Path, folder: Path, rows: int, first_id: int, branch: str, *, create: bool) -> str:
    """Import `rows` generated passengers from `first_id` on, in 1M-row Parquet chunks, onto `branch`."""
    import pyarrow.parquet as pq

    from flows.demo.data import generate_titanic
    from flows.lakehouse import MAIN, connect

    client = connect("local", lake)
    base = client.create_branch(branch, from_ref=MAIN).hash
    chunks = folder / f"{lake.name}-{branch}-chunks"
    chunks.mkdir()
    done = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        pq.write_table(
            generate_titanic(n, seed=first_id + done, first_id=first_id + done), chunks / f"{done:012d}.parquet"
        )
        done += n
    if create:
        client.create_table("titanic", str(chunks), branch=branch)
    client.import_data("titanic", str(chunks), branch=branch)
    shutil.rmtree(chunks)  # the table holds its own copy
    return base


def _audit(lake: Path, ref: str, published: str, env: dict[str, str]) -> dict:
    command = [sys.executable, "-c", _AUDIT, str(lake), ref, published, str(REPEATS)]
    audit = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    line = next((x for x in audit.stdout.splitlines() if "RESULT " in x), None)
    if line is None:
        raise SystemExit(f"audit failed:\n{audit.stdout[-2000:]}\n{audit.stderr[-3000:]}")
    return json.loads(line.partition("RESULT ")[2])


def _measure(table_rows: int, batch_rows: int, work: Path) -> dict:
    from flows.audit.proof import TableProof, files_fingerprint
    from flows.lakehouse import MAIN, connect

    lake = work / f"lake-{table_rows}"
    started = time.perf_counter()
    unproven = None
    if table_rows:
        _load(lake, work, table_rows, 1, "bench.main", create=True)
        client = connect("local", lake)
        unproven = f"bench.main@{client.get_branch('bench.main').hash}"
        client.create_branch("bench.unproven", from_ref=unproven)
        proof = TableProof(files_fingerprint(client.data_files("titanic", ref=unproven)[1]), ("PassengerId",))
        client.merge_branch("bench.main", MAIN, commit_properties=proof.properties())
        client.delete_branch("bench.main")
    setup_s = time.perf_counter() - started
    base = _load(lake, work, batch_rows, table_rows + 1, "bench.batch", create=not table_rows)
    client = connect("local", lake)
    ref = f"bench.batch@{client.get_branch('bench.batch').hash}"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    figures = _audit(lake, ref, f"{MAIN}@{base}", env)
    if unproven is not None:
        grouped = _audit(lake, ref, f"bench.unproven@{client.get_branch('bench.unproven').hash}", env)
        assert not grouped["relied_on_proof"]
        figures |= {"grouped_table_s": grouped["table_s"], "grouped_peak_mb": grouped["audit_peak_mb"]}
    client.delete_branch("bench.batch")

    source = work / f"bench.gate-{table_rows}"
    source.mkdir()
    import pyarrow.parquet as pq

    from flows.demo.data import generate_titanic

    first = table_rows + batch_rows + 1
    pq.write_table(generate_titanic(batch_rows, seed=first, first_id=first), source / "batch.parquet")
    gate_env = {**env, "PREFECT_HOME": str(work / "prefect")}  # migrated once, in main()
    started = time.perf_counter()
    command = ["run", "titanic", "--mode", "append", "--source", str(source), "--lakehouse", str(lake)]
    gate = subprocess.run(
        [sys.executable, "-c", _PEAK, *command], capture_output=True, text=True, env=gate_env, cwd=REPO
    )
    gate_s = time.perf_counter() - started
    if gate.returncode != 0:
        raise SystemExit(f"gate exit {gate.returncode}:\n{gate.stderr[-3000:]}")
    peak = next(float(x.split()[1]) for x in gate.stderr.splitlines() if x.startswith("PEAK_MB"))
    return {"table_rows": table_rows, "batch_rows": batch_rows, "setup_s": setup_s, **figures, "gate_s": gate_s,
            "gate_peak_mb": peak}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1_000_000)
    parser.add_argument("--tables", default="0,10000000,100000000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.tables.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="wap-bench-append-") as folder:
        prefect_home = Path(folder) / "prefect"
        migrate = [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"]
        env = {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        subprocess.run(migrate, check=True, capture_output=True, env=env)  # so no gate run pays the migrations
        for size in sizes:
            rows.append(_measure(size, args.batch, Path(folder)))
            shutil.rmtree(Path(folder) / f"lake-{size}")
            print(f"measured table of {size:,} rows", flush=True)
    empty = rows[0]
    print(f"batch of {args.batch:,} rows; x empty: the figure over the same batch into an empty table")
    head = f"{'table rows':>12} {'batch audit s':>14} {'x empty':>8} {'table audit s':>14} {'grouped s':>10}"
    print(head + f" {'audit peak MB':>14} {'gate s':>8} {'x empty':>8} {'gate peak MB':>13}  paths (batch/table)")
    for r in rows:
        grouped = f"{r['grouped_table_s']:>10.2f}" if "grouped_table_s" in r else f"{'-':>10}"
        print(
            f"{r['table_rows']:>12,} {r['batch_s']:>14.2f} {r['batch_s'] / empty['batch_s']:>8.2f}"
            f" {r['table_s']:>14.2f} {grouped} {r['audit_peak_mb']:>14.0f} {r['gate_s']:>8.1f}"
            f" {r['gate_s'] / empty['gate_s']:>8.2f} {r['gate_peak_mb']:>13.0f}  {r['batch_path']}/{r['table_path']}"
        )
    for r in rows:
        print("BENCH_APPEND " + json.dumps(r))


if __name__ == "__main__":
    main()
