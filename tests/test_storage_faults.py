"""Storage integrity of the embedded lakehouse: damaged catalogs are refused, missing files are named.

Real files and real SQLite: each test damages a real lakehouse the way a disk, a user or a crash would.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from lakehouse_worker import write_csv

from flows.lakehouse import MAIN, CatalogUnusableError, StorageError, connect


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def populated(tmp_path: Path) -> Path:
    root = tmp_path / "lh"
    client = connect("local", root, author="tester")
    source = write_csv(tmp_path / "a.csv", 5)
    client.create_table("t", str(source), branch=MAIN)
    client.import_data("t", str(source), branch=MAIN)
    return root


def damage(root: Path, how: str) -> None:
    catalog = root / "catalog.db"
    for side in ("catalog.db-wal", "catalog.db-shm"):
        (root / side).unlink(missing_ok=True)
    if how == "empty":
        catalog.write_bytes(b"")
    elif how == "truncated":
        catalog.write_bytes(catalog.read_bytes()[: 4096 + 100])
    elif how == "random":
        catalog.write_bytes(os.urandom(64 * 1024))
    elif how == "deleted":
        catalog.unlink()


@pytest.mark.parametrize("how", ["empty", "truncated", "random", "deleted"])
def test_a_damaged_catalog_is_refused_and_nothing_is_written(populated: Path, how: str) -> None:
    damage(populated, how)
    before = snapshot(populated)
    with pytest.raises(CatalogUnusableError, match="wap doctor") as caught:
        connect("local", populated).get_branches()
    assert "\n" not in str(caught.value)
    assert snapshot(populated) == before  # no fresh "initialize lakehouse", no WAL files, no schema


def test_a_missing_data_file_of_main_is_named_by_scan_and_data_files(populated: Path) -> None:
    client = connect("local", populated)
    _, files = client.data_files("t", ref=MAIN)
    os.unlink(files[0])
    for read in (lambda: client.scan("t", ref=MAIN), lambda: client.data_files("t", ref=MAIN)):
        with pytest.raises(StorageError, match=r"table bauplan\.t .*file missing: " + files[0]):
            read()


def test_a_branch_naming_missing_files_is_not_merged_into_main(populated: Path, tmp_path: Path) -> None:
    client = connect("local", populated)
    client.create_branch("dev", MAIN)
    client.import_data("t", str(write_csv(tmp_path / "b.csv", 3, start=10)), branch="dev")
    _, files = client.data_files("t", ref="dev")
    before = client.get_branch(MAIN).hash
    new = [f for f in files if f not in client.data_files("t", ref=MAIN)[1]]
    os.unlink(new[0])
    with pytest.raises(StorageError, match="refusing to merge dev into main"):
        client.merge_branch("dev", MAIN)
    assert client.get_branch(MAIN).hash == before


def test_main_pointing_at_a_missing_metadata_file_is_refused(populated: Path) -> None:
    client = connect("local", populated)
    location = client.get_table("t", MAIN).metadata_location
    shutil.move(location, location + ".gone")
    with pytest.raises(CatalogUnusableError, match="does not exist"):
        connect("local", populated)


# ------------------------------------------------------------------ disk full and read-only storage
# Through the CLI: the run that meets the full disk is a real process, the commands around it (and those
# meeting read-only storage, which refuses at once) run in-process. Mounting needs root (the test VM and CI
# run as root); elsewhere these skip with the reason. Every mount is undone by its fixture's finalizer,
# whatever the test did.
def _cli_env(**extra: str) -> dict[str, str]:
    from lakehouse_worker import worker_env

    # worker_env: a shared bytecode cache, so each interpreter starts in ~1.5 s instead of ~5 s.
    env = {**worker_env(), "COLUMNS": "250", "PYTHONUNBUFFERED": "1", **extra}
    env.pop("PREFECT_API_URL", None)  # commands that need Prefect get it from gate_env
    return env


def _mount(args: list[str]) -> str | None:
    """Run `mount ARGS`; None if it worked, else why not."""
    import subprocess

    if os.geteuid() != 0:
        return "needs root to mount"
    try:
        result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount failed: {exc}"
    return None if result.returncode == 0 else f"mount {' '.join(args)} failed: {result.stderr.strip()}"


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """An 8 MiB tmpfs (skipped if it cannot be mounted), always unmounted afterwards."""
    import subprocess

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    why = _mount(["-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)])
    if why:
        pytest.skip(why)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.mark.subprocess
@pytest.mark.crash
def test_disk_full_during_a_gate_run_leaves_a_usable_lakehouse_and_gc_frees_the_space(
    small_tmpfs: Path, prefect_api: str, tmp_path: Path
) -> None:
    from gate_fixtures import run_cli
    from reliability_helpers import assert_one_line_error, gate_env, main_state, run_wap

    from flows.demo.data import generate_titanic
    from flows.demo.data import write_csv as write_titanic
    from flows.lakehouse.doctor import check_lakehouse

    lake = small_tmpfs / "lake"
    env = gate_env(prefect_api, **{k: v for k, v in _cli_env().items() if k.startswith("PYTHON")})
    small = write_titanic(generate_titanic(891, seed=1), tmp_path / "small.csv")
    # Titanic-shaped, with names that do not compress: ~10 MiB of Parquet, more than the tmpfs holds.
    rows = 200_000
    names = os.urandom(48 * rows).hex()
    big_table = generate_titanic(rows, seed=2)
    big_table = big_table.set_column(
        big_table.schema.get_field_index("Name"), "Name", pa.array([names[i * 96 : (i + 1) * 96] for i in range(rows)])
    )
    big = write_titanic(big_table, tmp_path / "big.csv")
    # main holds a published table (written directly: a gate run here would add ~10 s and prove nothing more).
    client = connect("local", lake, author="tester")
    client.create_table("titanic", str(small), branch=MAIN)
    client.import_data("titanic", str(small), branch=MAIN)
    before, free_before = main_state(lake), _free(small_tmpfs)

    full = run_wap("run", "titanic", "--source", str(big), "--lakehouse", str(lake), env=env)
    message = assert_one_line_error(full, (3,), "disk full")
    assert "sqlite" not in message.lower() and "database" not in message.lower(), message
    assert main_state(lake) == before
    branches = run_cli("branches", "--lakehouse", str(lake))
    assert branches.returncode == 0 and "main" in branches.stdout, branches.stderr

    gc = run_cli("gc", "--older-than", "0s", "--force", "--lakehouse", str(lake), env={"WAP_GC_GRACE": "0"})
    assert gc.returncode == 0 and "orphan files: reclaimed" in gc.stdout, gc.stdout + gc.stderr
    # Everything the failed run wrote is gone (by its own cleanup or by gc): the space is back, within the
    # few catalog pages and journal entries its branch's creation and deletion added.
    assert _free(small_tmpfs) >= free_before - 256 * 1024, (free_before, _free(small_tmpfs))
    report = check_lakehouse(lake)
    assert report.healthy and report.orphan_files == 0, report.findings

    again = write_titanic(generate_titanic(891, seed=3), tmp_path / "again.csv")
    ok = run_cli(
        "run", "titanic", "--source", str(again), "--lakehouse", str(lake), env={"PREFECT_API_URL": prefect_api}
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    head, (count, _digest) = main_state(lake)
    assert head != before[0] and count == 891


@pytest.fixture
def stale_lake(tmp_path: Path) -> Path:
    """A lakehouse with a table on main and a gate branch for `wap gc` to delete (a write)."""
    root = tmp_path / "lh"
    client = connect("local", root, author="tester")
    source = write_csv(tmp_path / "a.csv", 5)
    client.create_table("t", str(source), branch=MAIN)
    client.import_data("t", str(source), branch=MAIN)
    client.create_branch("alice.wap_titanic_0123abcd", MAIN)
    return root


def _reads_work(root: Path, commands: list[list[str]]) -> None:
    from gate_fixtures import run_cli

    for args in commands:
        result = run_cli(*args, "--lakehouse", str(root))
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr


WRITES = (["gc", "--older-than", "0s", "--force"], ["doctor", "--rebuild"])


def _writes_refused(root: Path, prefect_api: str, needle: str, commands: list[list[str]]) -> None:
    from gate_fixtures import run_cli
    from reliability_helpers import assert_one_line_error

    for args in commands:
        result = run_cli(*args, "--lakehouse", str(root), env={"PREFECT_API_URL": prefect_api})
        message = assert_one_line_error(result, (3,), needle)
        assert "read-only" in message, f"{args}: {message}"


@pytest.mark.subprocess
@pytest.mark.crash
def test_a_read_only_catalog_file_refuses_every_write_and_still_reads(stale_lake: Path, prefect_api: str) -> None:
    import shutil
    import subprocess

    catalog = stale_lake / "catalog.db"
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed: as root, chmod alone does not make a file read-only")
    made = subprocess.run(["chattr", "+i", str(catalog)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"chattr +i is not supported here: {made.stderr.strip()}")
    try:
        before = {b.name: b.hash for b in connect("local", stale_lake).get_branches()}
        source = write_csv(stale_lake.parent / "b.csv", 3, start=10)
        _writes_refused(stale_lake, prefect_api, str(catalog), [["run", "titanic", "--source", str(source)], *WRITES])
        _reads_work(stale_lake, [["branches"], ["doctor"]])
        assert {b.name: b.hash for b in connect("local", stale_lake).get_branches()} == before
    finally:
        subprocess.run(["chattr", "-i", str(catalog)], capture_output=True)


def _read_only_lake(mnt: Path, tmp_path: Path) -> Path:
    """A lakehouse (table on main, a gate branch for gc) on the tmpfs `mnt`, which is then remounted read-only."""
    root = mnt / "lh"
    source = write_csv(tmp_path / "a.csv", 5)
    client = connect("local", root, author="tester")
    client.create_table("t", str(source), branch=MAIN)
    client.import_data("t", str(source), branch=MAIN)
    client.create_branch("alice.wap_titanic_0123abcd", MAIN)
    why = _mount(["-o", "remount,ro", str(mnt)])
    if why:
        pytest.skip(why)
    return root


@pytest.mark.subprocess
@pytest.mark.crash
def test_a_read_only_lakehouse_directory_refuses_every_write_and_still_reads(
    small_tmpfs: Path, prefect_api: str, tmp_path: Path
) -> None:
    root = _read_only_lake(small_tmpfs, tmp_path)
    before = snapshot(root)
    _writes_refused(root, prefect_api, str(root), list(WRITES))
    _reads_work(root, [["tables"], ["query", "SELECT count(*) FROM t"], ["doctor"]])
    assert snapshot(root) == before


@pytest.mark.subprocess
@pytest.mark.crash
def test_a_gate_run_on_a_read_only_lakehouse_directory_exits_3_naming_it(
    small_tmpfs: Path, prefect_api: str, tmp_path: Path
) -> None:
    root = _read_only_lake(small_tmpfs, tmp_path)
    source = write_csv(tmp_path / "b.csv", 3, start=10)
    _writes_refused(root, prefect_api, str(root), [["run", "titanic", "--source", str(source)]])
