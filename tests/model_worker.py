"""A standby writer process for the stateful lakehouse model test (tests/test_lakehouse_model.py).

The test kills it with SIGKILL part-way through one write. Starting an interpreter and pyiceberg takes
seconds, far longer than the write itself, so the worker is started ahead of time and warms up first
(a throw-away lakehouse of its own: pyiceberg imports most of its writer lazily, on the first write).
Then, on stdin, it takes one JSON operation, opens the lakehouse it names and says "ready"; on "go"
it runs the operation and prints one JSON line: what it returned or raised, and how long it took.

    {"op": "import_data", "lakehouse": DIR, "table": T, "namespace": NS, "source": PATH, "branch": REF}
    {"op": "create_table", ... , "replace": bool}
    {"op": "merge_branch", "lakehouse": DIR, "source_ref": REF, "into": BRANCH}
    {"op": "create_branch", "lakehouse": DIR, "name": BRANCH, "from_ref": REF}
    {"op": "delete_branch", "lakehouse": DIR, "name": BRANCH}
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flows.lakehouse import MAIN, LakehouseError, connect


def _emit(payload: dict) -> None:
    print(json.dumps(payload), flush=True)


def warm_up() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="wap-model-warm-"))
    try:
        source = scratch / "warm.parquet"
        pq.write_table(pa.table({"id": pa.array([1], pa.int64()), "name": pa.array(["a"])}), source)
        client = connect("local", scratch / "lake", author="warm")
        client.create_branch("warm", MAIN)
        client.create_table("t", str(source), branch="warm")
        client.import_data("t", str(source), branch="warm")
        client.merge_branch("warm", MAIN)
        client.scan("t", ref=MAIN)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(op: dict, client) -> object:
    kind = op["op"]
    if kind == "import_data":
        return client.import_data(op["table"], op["source"], branch=op["branch"], namespace=op["namespace"]).rows
    if kind == "create_table":
        info = client.create_table(
            op["table"], op["source"], branch=op["branch"], namespace=op["namespace"], replace=op["replace"]
        )
        return info.metadata_location
    if kind == "merge_branch":
        return client.merge_branch(op["source_ref"], op["into"])
    if kind == "create_branch":
        return client.create_branch(op["name"], op["from_ref"]).hash
    if kind == "delete_branch":
        return client.delete_branch(op["name"])
    raise ValueError(f"unknown operation {kind!r}")


def main() -> int:
    warm_up()
    _emit({"warm": True})
    line = sys.stdin.readline()
    if not line:
        return 0  # the test ended without needing this worker
    op = json.loads(line)
    client = connect("local", op["lakehouse"], author="crasher")
    _emit({"ready": True})
    if sys.stdin.readline().strip() != "go":
        return 0
    started = time.perf_counter()
    try:
        result = run(op, client)
    except LakehouseError as exc:
        _emit({"error": type(exc).__name__, "message": str(exc), "seconds": time.perf_counter() - started})
        return 1
    _emit({"result": result, "seconds": time.perf_counter() - started})
    return 0


if __name__ == "__main__":
    sys.exit(main())
