"""`wap doctor` and `wap doctor --rebuild` on deliberately damaged copies of a real lakehouse.

Every check goes through the CLI (in-process; the processes killed mid-run are real ones); the lakehouse is
real files and real SQLite. One
original lakehouse is built per module (main: create, import, merge of a branch, import; branch dev), and
each test damages its own copy the way a disk, a user or a crash would, then checks that `wap doctor`
names the damage (exit 3), that `--rebuild` recovers the refs (each branch at its newest commit whose
files all exist), and that afterwards `wap branches`, `wap tables` and `wap query` work and main holds
what the original held at that commit.
"""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from gate_fixtures import REPO, run_cli
from lakehouse_worker import worker_env, write_csv
from reliability_helpers import assert_one_line_error

from flows.lakehouse import MAIN, CatalogUnusableError, connect
from flows.lakehouse.doctor import DAMAGED_PREFIX, check_lakehouse

SEED = int(os.environ.get("WAP_DOCTOR_SEED", str(int(time.time()))))
KILLS = int(os.environ.get("WAP_DOCTOR_KILLS", "4"))


def wap(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args)


def rows(lake: Path, ref: str) -> list[tuple]:
    table = connect("local", lake).scan("t", ref=ref)
    return sorted(zip(*(table.column(c).to_pylist() for c in ("id", "x", "name", "tag")), strict=True))


@dataclass(frozen=True)
class Original:
    lake: Path
    heads: dict[str, str]  # branch -> head
    main_log: list[str]  # main's commits, newest first
    last_import_file: str  # the data file main's newest commit added


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Original:
    base = tmp_path_factory.mktemp("doctor")
    lake = base / "orig"
    client = connect("local", lake, author="tester")
    client.create_table("t", str(write_csv(base / "a.csv", 5)), branch=MAIN)
    client.import_data("t", str(base / "a.csv"), branch=MAIN)
    client.create_branch("dev", MAIN)
    client.import_data("t", str(write_csv(base / "b.csv", 3, start=10)), branch="dev")
    client.merge_branch("dev", MAIN)
    before = set(client.data_files("t", ref=MAIN)[1])
    client.import_data("t", str(write_csv(base / "c.csv", 4, start=20)), branch=MAIN)
    (added,) = set(client.data_files("t", ref=MAIN)[1]) - before
    heads = {b.name: b.hash for b in client.get_branches()}
    return Original(lake, heads, [c.hash for c in client.get_commits(MAIN)], added)


def copy_of(original: Original, tmp_path: Path) -> Path:
    lake = tmp_path / "copy"
    shutil.copytree(original.lake, lake, symlinks=True)
    return lake


def damage(original: Original, lake: Path, how: str) -> str:
    """Damage the copy; return a text the doctor's finding must contain."""
    catalog = lake / "catalog.db"
    for side in ("catalog.db-wal", "catalog.db-shm"):
        (lake / side).unlink(missing_ok=True)
    if how == "truncated":
        catalog.write_bytes(catalog.read_bytes()[: 4096 + 100])
        return "catalog.db"
    if how == "garbage":
        catalog.write_bytes(random.Random(SEED).randbytes(64 * 1024))
        return "catalog.db"
    if how == "deleted":
        catalog.unlink()
        return "does not exist"
    if how == "metadata":
        location = connect("local", lake).get_table("t", MAIN).metadata_location
        os.unlink(location)
        return location
    if how == "data":
        # The file as the copy holds it (relocated): same path below the copy's root.
        path = lake / Path(original.last_import_file).relative_to(original.lake)
        path.unlink()
        return str(path)
    raise AssertionError(how)


def test_a_healthy_lakehouse_is_reported_healthy_and_nothing_is_written(original: Original, tmp_path: Path) -> None:
    lake = copy_of(original, tmp_path)
    before = {p: p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()}
    result = wap("doctor", "--lakehouse", str(lake))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith(f"healthy: {lake}: 2 branches, 6 commits, 0 orphan")
    assert "error:" not in result.stdout and "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()} == before


# Where main ends up after the rebuild: the same head (only the catalog was damaged) or its parent.
CASES = {"truncated": 0, "garbage": 0, "deleted": 0, "metadata": 1, "data": 1}


@pytest.mark.parametrize("how", list(CASES))
def test_doctor_reports_the_damage_and_rebuild_recovers_the_refs(original: Original, tmp_path: Path, how: str):
    lake = copy_of(original, tmp_path)
    needle = damage(original, lake, how)
    damaged = (lake / "catalog.db").read_bytes() if how != "deleted" else None

    check = wap("doctor", "--lakehouse", str(lake))
    assert_one_line_error(check, (3,), "not healthy", str(lake))
    errors = [line for line in check.stdout.splitlines() if line.startswith("error: ")]
    assert errors and any(needle in line for line in errors), check.stdout
    if how in ("metadata", "data"):
        assert any("branch main" in line for line in errors), check.stdout

    rebuilt = wap("doctor", "--rebuild", "--lakehouse", str(lake))
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    expected_main = original.main_log[CASES[how]]
    if CASES[how]:
        line = next(x for x in rebuilt.stdout.splitlines() if x.startswith("main: "))
        assert f"rolled back from {original.heads[MAIN][:12]} to {expected_main[:12]}" in line and needle in line
    else:
        assert f"main: at {original.heads[MAIN][:12]}" in rebuilt.stdout
    kept = [p for p in lake.iterdir() if p.name.startswith(DAMAGED_PREFIX) and not p.name.endswith(("-wal", "-shm"))]
    if damaged is not None:  # the damaged catalog is kept aside, byte for byte
        assert [p.read_bytes() == damaged for p in kept] == [True], kept
        assert f"the old catalog is kept as {kept[0]}" in rebuilt.stdout

    client = connect("local", lake)
    assert {b.name: b.hash for b in client.get_branches()} == {**original.heads, MAIN: expected_main}
    assert rows(lake, MAIN) == rows(original.lake, f"{MAIN}@{expected_main}")
    assert rows(lake, "dev") == rows(original.lake, "dev")
    if how in ("garbage", "data"):  # one CLI call costs ~1.5 s: the other cases read the branches in-process
        branches = wap("branches", "--lakehouse", str(lake))
        assert branches.returncode == 0 and expected_main[:12] in branches.stdout, branches.stderr
    tables = wap("tables", "--lakehouse", str(lake))
    assert tables.returncode == 0 and "bauplan.t" in tables.stdout, tables.stderr
    count = len(rows(original.lake, f"{MAIN}@{expected_main}"))
    query = wap("query", "SELECT count(*) AS n FROM t", "--lakehouse", str(lake))
    assert query.returncode == 0 and f"│ {count} " in query.stdout, query.stdout + query.stderr
    assert check_lakehouse(lake).healthy, check_lakehouse(lake).findings


@pytest.mark.subprocess
def test_rebuild_refuses_while_another_process_is_writing(original: Original, tmp_path: Path) -> None:
    lake = copy_of(original, tmp_path)
    damage(original, lake, "garbage")
    garbage = (lake / "catalog.db").read_bytes()
    # A real writer holds writers.lock shared for the whole write: a process that does just that.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lake / 'writers.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            f"fcntl.flock(fd, fcntl.LOCK_SH)\nprint('held', flush=True)\ntime.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = wap("doctor", "--rebuild", "--lakehouse", str(lake))
        assert_one_line_error(refused, (3,), "not rebuilt", "another process is writing", "writers.lock")
        assert (lake / "catalog.db").read_bytes() == garbage
        assert not [p for p in lake.iterdir() if p.name.startswith(DAMAGED_PREFIX)]
    finally:
        holder.kill()
        holder.wait()
    fd = os.open(lake / "writers.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the holder is gone: the lock is free again
    finally:
        os.close(fd)


@pytest.mark.subprocess
@pytest.mark.crash
def test_sigkill_during_rebuild_leaves_the_old_or_the_new_state_and_a_rerun_succeeds(
    original: Original, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    lake = copy_of(original, tmp_path)
    damage(original, lake, "garbage")
    garbage = (lake / "catalog.db").read_bytes()
    duration = 1.5  # of a whole `wap doctor --rebuild`; measured on each rerun below
    outcomes = []
    for attempt in range(KILLS):
        if attempt:
            shutil.rmtree(lake)
            lake = copy_of(original, tmp_path)
            (lake / "catalog.db").write_bytes(garbage)
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "doctor", "--rebuild", "--lakehouse", str(lake)],
            env=worker_env(),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Most of a run is interpreter start-up: aim at its last third, where the catalog is replaced.
        time.sleep(duration * rng.uniform(0.7, 1.0))
        proc.kill()
        code = proc.wait()
        try:
            heads = {b.name: b.hash for b in connect("local", lake).get_branches()}
            outcomes.append("new" if code == -9 else "finished")
            assert heads == original.heads, f"attempt {attempt}: a state that is neither old nor new"
        except CatalogUnusableError:
            outcomes.append("old")
            assert (lake / "catalog.db").read_bytes() == garbage, f"attempt {attempt}: the old catalog changed"
        started = time.monotonic()
        rerun = wap("doctor", "--rebuild", "--lakehouse", str(lake))
        duration = time.monotonic() - started
        assert rerun.returncode == 0, rerun.stderr
        assert {b.name: b.hash for b in connect("local", lake).get_branches()} == original.heads
        assert rows(lake, MAIN) == rows(original.lake, MAIN)
        assert not [p for p in lake.iterdir() if p.name.startswith("catalog.db.rebuild-")]
    print(f"kill outcomes (seed {SEED}): {outcomes}")


def test_a_lagging_journal_is_a_warning_and_a_rebuild_completes_it(original: Original, tmp_path: Path) -> None:
    from flows.lakehouse.doctor import read_journal, rebuild_catalog

    lake = copy_of(original, tmp_path)
    newest = sorted((lake / "journal").glob("*.c.*.json"))[-1]
    newest.unlink()  # as if the disk filled up right after main's last commit
    report = check_lakehouse(lake)
    assert report.healthy, report.findings
    assert any(f.severity == "warning" and "not in the journal" in f.message for f in report.findings)

    outcome = rebuild_catalog(lake)  # the catalog is readable: it supplies the commit the journal lacks
    kept = {b: ("kept", h) for b, h in original.heads.items()}
    assert {o.branch: (o.status, o.new) for o in outcome.branches} == kept
    assert set(read_journal(lake).commits) == set(original.main_log) | {original.heads["dev"]}
    assert not [f for f in check_lakehouse(lake).findings if f.severity != "info"]
    # The journal alone now rebuilds the same refs: lose the catalog entirely and rebuild again.
    (lake / "catalog.db").unlink()
    rebuild_catalog(lake)
    assert {b.name: b.hash for b in connect("local", lake).get_branches()} == original.heads
    assert rows(lake, MAIN) == rows(original.lake, MAIN)


@pytest.mark.subprocess
@pytest.mark.crash
def test_sigkill_during_doctor_check_changes_nothing(original: Original, tmp_path: Path) -> None:
    """`wap doctor` only reads: killed at any moment, it leaves every file as it was, and the next check
    (and every read) still works."""
    rng = random.Random(SEED)
    lake = copy_of(original, tmp_path)
    before = {p: p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()}
    started = time.monotonic()
    assert wap("doctor", "--lakehouse", str(lake)).returncode == 0
    duration = time.monotonic() - started
    for attempt in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "doctor", "--lakehouse", str(lake)],
            env=worker_env(),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(duration * rng.uniform(0.3, 1.0))  # mostly while it walks the catalog and the files
        proc.kill()
        proc.wait()
        after = {p: p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()}
        assert after == before, f"attempt {attempt} (seed {SEED}): a killed `wap doctor` changed files"
    assert wap("doctor", "--lakehouse", str(lake)).returncode == 0
    assert {b.name: b.hash for b in connect("local", lake).get_branches()} == original.heads
