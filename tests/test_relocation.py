"""A lakehouse directory can be copied or moved and works on its own at the new place."""

from __future__ import annotations

import shutil
from pathlib import Path

from lakehouse_worker import write_csv

from flows.lakehouse import MAIN, connect


def test_a_copy_works_after_the_original_is_deleted_and_a_move_works(tmp_path: Path) -> None:
    original = tmp_path / "orig"
    client = connect("local", original, author="tester")
    source = write_csv(tmp_path / "a.csv", 5)
    client.create_table("t", str(source), branch=MAIN)
    client.import_data("t", str(source), branch=MAIN)

    copy = tmp_path / "copy"
    shutil.copytree(original, copy, symlinks=True)
    shutil.rmtree(original)
    lake = connect("local", copy, author="tester")
    assert lake.scan("t", ref=MAIN).num_rows == 5
    assert lake.query("SELECT count(*) AS n FROM t", ref=MAIN).column("n")[0].as_py() == 5
    _, files = lake.data_files("t", ref=MAIN)
    assert files and all(Path(f).is_relative_to(copy) for f in files)
    assert Path(lake.get_tables(MAIN)[0].metadata_location).is_relative_to(copy)

    lake.create_branch("dev", MAIN)
    lake.import_data("t", str(write_csv(tmp_path / "b.csv", 3, start=10)), branch="dev")
    lake.merge_branch("dev", MAIN)
    assert lake.scan("t", ref=MAIN).num_rows == 8
    assert not original.exists()  # nothing was written at the old place

    moved = tmp_path / "moved"
    copy.rename(moved)
    lake = connect("local", moved)
    assert lake.scan("t", ref=MAIN).num_rows == 8
    assert all(Path(f).is_relative_to(moved) for f in lake.data_files("t", ref=MAIN)[1])


def test_doctor_and_rebuild_work_on_a_moved_copy(tmp_path: Path) -> None:
    from flows.lakehouse.doctor import check_lakehouse, rebuild_catalog

    original = tmp_path / "orig"
    client = connect("local", original, author="tester")
    source = write_csv(tmp_path / "a.csv", 5)
    client.create_table("t", str(source), branch=MAIN)
    client.import_data("t", str(source), branch=MAIN)
    heads = {b.name: b.hash for b in client.get_branches()}

    moved = tmp_path / "moved"
    shutil.copytree(original, moved, symlinks=True)
    shutil.rmtree(original)
    report = check_lakehouse(moved)  # every file is found at the new place: nothing missing, nothing orphaned
    assert report.healthy and report.orphan_files == 0, report.findings
    (moved / "catalog.db").write_bytes(b"\0" * 8192)
    assert not check_lakehouse(moved).healthy
    rebuild_catalog(moved)  # the journal's trees are relative too
    lake = connect("local", moved)
    assert {b.name: b.hash for b in lake.get_branches()} == heads
    assert lake.scan("t", ref=MAIN).num_rows == 5
    assert not original.exists()
