"""Worker processes for the lakehouse tests and benchmark, plus small helpers they share.

Run as a script (`python tests/lakehouse_worker.py COMMAND ...`) it is a separate interpreter writing to
a lakehouse; imported, its functions are `multiprocessing` targets. Every command prints one JSON line
on stdout, so the parent can check what each worker did.

    imports LAKEHOUSE TABLE SOURCE BRANCH COUNT GO_FILE    append SOURCE COUNT times
    merges LAKEHOUSE GO_FILE BRANCH...                     merge each BRANCH into main
    chaos LAKEHOUSE DATADIR SEED                           loop imports + merges until killed
    rss-import LAKEHOUSE TABLE SOURCE                      create + import; report peak RSS
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from flows.lakehouse import (
    MAIN,
    ConcurrentUpdateError,
    LakehouseError,
    MergeConflictError,
    connect,
)

CHAOS_TABLES = ("t1", "t2")


# ------------------------------------------------------------------------------------------- helpers
def write_csv(path: Path, rows: int, *, start: int = 0, tag: int = 0) -> Path:
    """A CSV with an int id, a float, a string and an int tag column."""
    ids = pa.array(range(start, start + rows), pa.int64())
    table = pa.table(
        {
            "id": ids,
            "x": pa.array([i * 0.5 for i in range(start, start + rows)], pa.float64()),
            "name": pa.array([f"n{i}" for i in range(start, start + rows)], pa.string()),
            "tag": pa.array([tag] * rows, pa.int64()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path)
    return path


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


def peak_rss_kb() -> int:
    """This process's peak resident set size, in KiB.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child started by a
    big parent (pytest after generating data) would report the parent's peak instead of its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def worker_env() -> dict[str, str]:
    """Environment for worker interpreters: a shared bytecode cache.

    With PYTHONDONTWRITEBYTECODE set (as in this sandbox), every interpreter recompiles pyiceberg,
    pyarrow and pandas from source: ~3 s of CPU per worker instead of ~1 s. Compiled files go to a
    cache under the temporary directory, never into the virtualenv.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "wap-test-pycache")
    return env


def _ready_then_wait(go_file: str) -> None:
    # Interpreters take a second or two to start: each worker says it is ready, and all start together
    # when the parent creates GO_FILE, so that they really overlap.
    _emit({"ready": os.getpid()})
    go = Path(go_file)
    deadline = time.monotonic() + 120
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{go_file} never appeared")
        time.sleep(0.002)


def _emit(payload: dict) -> None:
    print(json.dumps(payload), flush=True)


# ------------------------------------------------------------------------------------------ commands
def run_imports(lakehouse: str, table: str, source: str, branch: str, count: int, go_file: str) -> dict:
    client = connect("local", lakehouse)
    _ready_then_wait(go_file)
    landed: list[int] = []
    conflicts = 0
    for _ in range(count):
        try:
            landed.append(client.import_data(table, source, branch=branch).rows or 0)
        except ConcurrentUpdateError:
            conflicts += 1
    return {"landed": landed, "conflicts": conflicts, "pid": os.getpid()}


def run_merges(lakehouse: str, go_file: str, branches: list[str]) -> dict:
    client = connect("local", lakehouse)
    _ready_then_wait(go_file)
    merged: list[str] = []
    conflicts: list[str] = []
    for branch in branches:
        try:
            client.merge_branch(branch, MAIN)
            merged.append(branch)
        except MergeConflictError:
            conflicts.append(branch)
    return {"merged": merged, "conflicts": conflicts}


def chaos_files(datadir: Path) -> dict[str, list[Path]]:
    """Per table, CSVs of different sizes (a few large ones make kills land mid-import)."""
    sizes = [5, 17, 40, 120, 3_000, 60_000]
    return {
        table: [write_csv(datadir / table / f"part{k}.csv", n, tag=k) for k, n in enumerate(sizes)]
        for table in CHAOS_TABLES
    }


def chaos(lakehouse: str, datadir: str, seed: int, announce: bool = False) -> None:
    """Import and merge forever, as fast as possible; the parent kills this process at random.

    Each round branches from main, imports into both tables on the branch and merges the branch (so
    main's two tables change together), sometimes imports straight into main, and sometimes deletes
    the merged branch. Conflicts with a concurrent chaos worker are expected and skipped.
    """
    rng = random.Random(seed)
    files = {t: sorted((Path(datadir) / t).glob("*.csv")) for t in CHAOS_TABLES}
    client = connect("local", lakehouse)
    if announce:
        print("ready", flush=True)
    round_no = 0
    while True:
        round_no += 1
        branch = f"chaos.s{seed}-r{round_no}"
        try:
            if rng.random() < 0.2:
                client.import_data("t1", str(rng.choice(files["t1"])), branch=MAIN)
                continue
            client.create_branch(branch, MAIN)
            for table in CHAOS_TABLES:
                client.import_data(table, str(rng.choice(files[table])), branch=branch)
            client.merge_branch(branch, MAIN, commit_message=f"chaos round {round_no}")
            if rng.random() < 0.5:
                client.delete_branch(branch)
        except (ConcurrentUpdateError, MergeConflictError):
            continue  # another chaos worker got there first


def rss_import(lakehouse: str, table: str, source: str) -> dict:
    """Create `table` from `source` and import it; report timings and peak RSS (KiB).

    The baseline is taken after a tiny warm-up import, so that it already holds the libraries pyiceberg
    imports lazily on its first write (~70 MiB): what the peak adds to it is the data's doing.
    """
    client = connect("local", lakehouse)
    with tempfile.TemporaryDirectory() as tmp:
        warmup = write_csv(Path(tmp) / "warmup.csv", 3)
        client.create_table("warmup", str(warmup), branch=MAIN)
        client.import_data("warmup", str(warmup), branch=MAIN)
    baseline = peak_rss_kb()
    started = time.perf_counter()
    client.create_table(table, source, branch=MAIN)
    created = time.perf_counter()
    state = client.import_data(table, source, branch=MAIN)
    finished = time.perf_counter()
    peak = peak_rss_kb()
    imports = [c for c in client.get_commits(MAIN) if c.properties.get("wap.source") == source]
    return {
        "rows": state.rows,
        "records": client.get_table(table, MAIN).records,  # from the Iceberg snapshot, not our counter
        "import_commits": sum(c.properties.get("wap.operation") == "import_data" for c in imports),
        "create_seconds": created - started,
        "seconds": finished - created,
        "baseline_kb": baseline,
        "peak_kb": peak,
    }


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    try:
        if command == "imports":
            lakehouse, table, source, branch, count, go_file = args
            _emit(run_imports(lakehouse, table, source, branch, int(count), go_file))
        elif command == "merges":
            lakehouse, go_file, *branches = args
            _emit(run_merges(lakehouse, go_file, branches))
        elif command == "chaos":
            lakehouse, datadir, seed = args
            chaos(lakehouse, datadir, int(seed), announce=True)
        elif command == "rss-import":
            _emit(rss_import(*args))
        else:
            print(f"unknown command {command!r}", file=sys.stderr)
            return 2
    except LakehouseError as exc:
        _emit({"error": type(exc).__name__, "message": str(exc)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
