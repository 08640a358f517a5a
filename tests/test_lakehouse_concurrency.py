"""Concurrent writers and crashes: threads, separate processes, and processes killed with SIGKILL.

Processes are real: `subprocess` runs tests/lakehouse_worker.py in fresh interpreters; the kill loop
forks workers from a `forkserver` that has the libraries preloaded, so dozens of kills fit in seconds.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lakehouse_worker import CHAOS_TABLES, chaos, chaos_files, worker_env, write_csv

from flows.lakehouse import (
    MAIN,
    BranchExistsError,
    ConcurrentUpdateError,
    MergeConflictError,
    connect,
)
from flows.lakehouse.local import LocalClient

WORKER = Path(__file__).with_name("lakehouse_worker.py")
# Kill rounds; each kills two concurrent workers. Raise it (e.g. WAP_KILL_ROUNDS=200) for a soak run.
KILL_ROUNDS = int(os.environ.get("WAP_KILL_ROUNDS", "16"))
KILL_SEED = int(os.environ.get("WAP_KILL_SEED", str(int(time.time()))))


def import_commits(client: LocalClient, ref: str) -> list:
    return [c for c in client.get_commits(ref) if c.properties.get("wap.operation") == "import_data"]


def start_workers(commands: list[list[str]]) -> list[subprocess.Popen]:
    """Start one interpreter per command; return once every one has said it is ready."""
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), *cmd], stdout=subprocess.PIPE, text=True, env=worker_env())
        for cmd in commands
    ]
    for proc in procs:
        line = proc.stdout.readline()
        assert '"ready"' in line, f"worker did not start: {line!r}"
    return procs


def finish(procs: list[subprocess.Popen]) -> list[dict]:
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# ---------------------------------------------------------------------------------------- concurrent imports
def test_threads_appending_to_one_table_lose_no_update(lakehouse: LocalClient, tmp_path: Path) -> None:
    # At least 2 rows each: x is then 0.0, 0.5, ... and every file infers x as double.
    sources = {n: str(write_csv(tmp_path / f"s{n}.csv", n)) for n in range(2, 10)}
    lakehouse.create_table("t", sources[2], branch=MAIN)
    barrier = threading.Barrier(len(sources))

    def writer(n: int) -> tuple[list[int], int]:
        client = connect("local", lakehouse.root)  # one client per thread, as separate callers would
        barrier.wait()
        landed, conflicts = [], 0
        for _ in range(4):
            try:
                landed.append(client.import_data("t", sources[n], branch=MAIN).rows)
            except ConcurrentUpdateError:
                conflicts += 1
        return landed, conflicts

    with ThreadPoolExecutor(len(sources)) as pool:
        outcomes = list(pool.map(writer, sources))

    landed = [rows for rows_list, _ in outcomes for rows in rows_list]
    assert all(len(rows) + conflicts == 4 for rows, conflicts in outcomes)  # each attempt has one outcome
    assert landed, "no import landed"
    assert lakehouse.scan("t", ref=MAIN).num_rows == sum(landed)
    assert sorted(int(c.properties["wap.rows"]) for c in import_commits(lakehouse, MAIN)) == sorted(landed)


@pytest.mark.subprocess
def test_processes_appending_to_one_table_lose_no_update(lakehouse: LocalClient, tmp_path: Path) -> None:
    sizes = [11, 13, 17, 19]
    sources = [str(write_csv(tmp_path / f"s{n}.csv", n)) for n in sizes]
    lakehouse.create_table("t", sources[0], branch=MAIN)
    go = tmp_path / "go"
    procs = start_workers([["imports", str(lakehouse.root), "t", source, MAIN, "5", str(go)] for source in sources])
    go.touch()
    results = finish(procs)

    landed = [rows for result in results for rows in result["landed"]]
    assert all(len(r["landed"]) + r["conflicts"] == 5 for r in results)
    assert len({r["pid"] for r in results}) == len(sizes)
    assert landed, "no import landed"
    assert lakehouse.scan("t", ref=MAIN).num_rows == sum(landed)
    assert Counter(int(c.properties["wap.rows"]) for c in import_commits(lakehouse, MAIN)) == Counter(landed)


def test_imports_into_different_tables_of_one_branch_all_land(lakehouse: LocalClient, tmp_path: Path) -> None:
    # Writers of different tables rebase onto each other instead of failing.
    source = str(write_csv(tmp_path / "s.csv", 3))
    tables = [f"t{i}" for i in range(6)]
    for table in tables:
        lakehouse.create_table(table, source, branch=MAIN)
    barrier = threading.Barrier(len(tables))

    def writer(table: str) -> int:
        client = connect("local", lakehouse.root)
        barrier.wait()
        return sum(client.import_data(table, source, branch=MAIN).rows for _ in range(3))

    with ThreadPoolExecutor(len(tables)) as pool:
        assert list(pool.map(writer, tables)) == [9] * len(tables)
    assert all(lakehouse.get_table(t, MAIN).records == 9 for t in tables)


def test_concurrent_create_branch_has_one_winner(lakehouse: LocalClient) -> None:
    barrier = threading.Barrier(8)

    def create(_: int) -> bool:
        client = connect("local", lakehouse.root)
        barrier.wait()
        try:
            client.create_branch("dev", MAIN)
            return True
        except BranchExistsError:
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(create, range(8))) == [False] * 7 + [True]


@pytest.mark.subprocess
def test_processes_opening_a_fresh_lakehouse_together_agree_on_main(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    go = tmp_path / "go"
    # `merges` with no branch: each worker only opens the catalog (racing to initialise it) after GO.
    procs = start_workers([["merges", str(root), str(go)] for _ in range(4)])
    go.touch()
    assert all(r == {"merged": [], "conflicts": []} for r in finish(procs))
    client = connect("local", root)
    assert [b.name for b in client.get_branches()] == [MAIN]
    assert len(client.get_commits(MAIN)) == 1


def test_threads_opening_fresh_lakehouses_together_never_see_locked(tmp_path: Path) -> None:
    # Regression: switching a new catalog file to WAL answered "database is locked" at once (SQLite does
    # not wait there), which failed `wap run --all` on a fresh lakehouse about one time in fifteen.
    def open_lakehouse(root: Path, barrier: threading.Barrier) -> list[str]:
        barrier.wait()
        return [b.name for b in connect("local", root).get_branches()]

    for trial in range(60):
        root, barrier = tmp_path / f"fresh{trial}", threading.Barrier(4)
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(open_lakehouse, [root] * 4, [barrier] * 4)) == [[MAIN]] * 4
        assert len(connect("local", root).get_commits(MAIN)) == 1


# ----------------------------------------------------------------------------------------- concurrent merges
@pytest.mark.subprocess
def test_processes_merging_many_branches_into_main(lakehouse: LocalClient, tmp_path: Path) -> None:
    branches = [f"feature.b{i}" for i in range(12)]
    for i, branch in enumerate(branches):
        lakehouse.create_branch(branch, MAIN)
        source = str(write_csv(tmp_path / f"b{i}.csv", i + 1))
        lakehouse.create_table(f"t{i}", source, branch=branch)
        lakehouse.import_data(f"t{i}", source, branch=branch)
    go = tmp_path / "go"
    procs = start_workers([["merges", str(lakehouse.root), str(go), *branches[k::4]] for k in range(4)])
    go.touch()
    results = finish(procs)

    assert sorted(b for r in results for b in r["merged"]) == sorted(branches)
    assert {t.name: t.records for t in lakehouse.get_tables(MAIN)} == {f"t{i}": i + 1 for i in range(12)}
    merges = [c for c in lakehouse.get_commits(MAIN) if len(c.parent_hashes) == 2]
    assert sorted(c.parent_hashes[1] for c in merges) == sorted(lakehouse.get_branch(b).hash for b in branches)


def test_concurrent_merges_changing_one_table_have_one_winner(lakehouse: LocalClient, tmp_path: Path) -> None:
    base = str(write_csv(tmp_path / "base.csv", 2))
    lakehouse.create_table("t", base, branch=MAIN)
    branches = [f"b{i}" for i in range(8)]
    for i, branch in enumerate(branches):
        lakehouse.create_branch(branch, MAIN)
        lakehouse.import_data("t", str(write_csv(tmp_path / f"b{i}.csv", 10 + i)), branch=branch)
    barrier = threading.Barrier(len(branches))

    def merge(branch: str) -> str | None:
        client = connect("local", lakehouse.root)
        barrier.wait()
        try:
            client.merge_branch(branch, MAIN)
            return branch
        except MergeConflictError as exc:
            assert exc.tables == ["bauplan.t"]
            return None

    with ThreadPoolExecutor(len(branches)) as pool:
        winners = [b for b in pool.map(merge, branches) if b]

    assert len(winners) == 1
    assert lakehouse.scan("t", ref=MAIN).num_rows == 10 + branches.index(winners[0])


def test_readers_never_see_half_a_merge(lakehouse: LocalClient, tmp_path: Path) -> None:
    # t1 and t2 only ever change together (one merge); a reader of both must always see equal counts.
    source = str(write_csv(tmp_path / "s.csv", 2))
    for table in ("t1", "t2"):
        lakehouse.create_table(table, source, branch=MAIN)
    stop = threading.Event()
    torn: list[object] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        client = connect("local", lakehouse.root)
        while not stop.is_set():
            diff = client.query("SELECT (SELECT count(*) FROM t1) - (SELECT count(*) FROM t2) AS d", ref=MAIN)
            records = {t.name: t.records for t in client.get_tables(MAIN)}
            if diff.column("d")[0].as_py() != 0 or records["t1"] != records["t2"]:
                torn.append((diff.to_pylist(), records))
            reads += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(20):
            lakehouse.create_branch(f"b{i}", MAIN)
            for table in ("t1", "t2"):
                lakehouse.import_data(table, source, branch=f"b{i}")
            lakehouse.merge_branch(f"b{i}", MAIN)
    finally:
        stop.set()
        thread.join()
    assert reads > 5 and not torn, f"{len(torn)} of {reads} reads saw half a merge: {torn[:3]}"


# ------------------------------------------------------------------------------------------ killed writers
def check_consistent(root: Path, *, full: bool) -> int:
    """Assert the lakehouse is whole after crashes; return the number of import commits on main."""
    client = connect("local", root)  # opening recovers SQLite's WAL after a crash
    with sqlite3.connect(root / "catalog.db") as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        known = {h for (h,) in con.execute("SELECT hash FROM commits")}
    branches = client.get_branches()
    assert all(b.hash in known for b in branches), "a ref points at a missing commit"

    # Pin main's head, so that history and rows are read from the same commit.
    main = f"{MAIN}@{client.get_branch(MAIN).hash}"
    history = client.get_commits(main)
    pinned = [main]
    if full:
        pinned += [f"{b.name}@{b.hash}" for b in branches]
        merged = [c for c in history if len(c.parent_hashes) == 2]
        pinned += [f"{MAIN}@{c.hash}" for c in random.Random(len(history)).sample(merged, min(5, len(merged)))]
    for ref in pinned:
        # Every table of the ref loads and scans, and holds exactly the rows of the imports its
        # commit descends from: no lost, duplicated or half-written import.
        expected = Counter()
        for commit in import_commits(client, ref):
            expected[Path(commit.properties["wap.source"]).parent.name] += int(commit.properties["wap.rows"])
        tables = {t.name: t for t in client.get_tables(ref)}
        assert set(tables) == set(CHAOS_TABLES)
        for name, info in tables.items():
            scanned = client.scan(name, ref=ref).num_rows
            assert scanned == info.records == expected[name], (ref, name, scanned, info.records, expected[name])
    return len(import_commits(client, main))


@pytest.mark.subprocess
@pytest.mark.crash
def test_sigkill_at_random_instants_leaves_every_ref_consistent(tmp_path: Path) -> None:
    root, data = tmp_path / "lh", tmp_path / "data"
    files = chaos_files(data)
    client = connect("local", root)
    for table in CHAOS_TABLES:
        client.create_table(table, str(files[table][0]), branch=MAIN)
    rng = random.Random(KILL_SEED)
    context = multiprocessing.get_context("forkserver")
    # Preload the heavy imports (pyiceberg, pyarrow: ~1.5 s) once, so a forked worker writes at once.
    context.set_forkserver_preload(["lakehouse_worker", "flows.lakehouse.local", "flows.lakehouse.sql"])
    kills = 0
    for round_no in range(KILL_ROUNDS):
        # Two workers race on the same catalog; each dies at its own random instant.
        workers = [context.Process(target=chaos, args=(str(root), str(data), 2 * round_no + i)) for i in range(2)]
        for worker in workers:
            worker.start()
        started = time.monotonic()
        delays = [rng.uniform(0.05, 0.9) for _ in workers]
        for delay, worker in sorted(zip(delays, workers, strict=True), key=lambda pair: pair[0]):
            time.sleep(max(0.0, started + delay - time.monotonic()))
            assert worker.is_alive(), f"chaos worker died by itself (exit {worker.exitcode}), seed {KILL_SEED}"
            os.kill(worker.pid, signal.SIGKILL)
            worker.join()
            assert worker.exitcode == -signal.SIGKILL
            kills += 1
        check_consistent(root, full=False)

    # A few kills of fresh interpreters too (no forkserver in between), after they report ready.
    for round_no in range(3):
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), "chaos", str(root), str(data), str(1000 + round_no)],
            stdout=subprocess.PIPE,
            text=True,
            env=worker_env(),
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        assert proc.poll() is None, "chaos worker died by itself"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        kills += 1
        check_consistent(root, full=False)

    imports_on_main = check_consistent(root, full=True)
    with sqlite3.connect(root / "catalog.db") as con:
        commits = con.execute("SELECT count(*) FROM commits").fetchone()[0]
    merges = sum(len(c.parent_hashes) == 2 for c in client.get_commits(MAIN))
    print(f"{kills} kills (seed {KILL_SEED}): {commits} commits, {merges} merges, {imports_on_main} imports on main")
    assert kills >= 30 or KILL_ROUNDS < 14
    # The workers must have been busy when killed, or the kills prove nothing.
    assert commits > kills and merges > 0 and imports_on_main > 0
