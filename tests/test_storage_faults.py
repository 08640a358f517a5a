"""Storage integrity of the embedded lakehouse: damaged catalogs are refused, missing files are named.

Real files and real SQLite: each test damages a real lakehouse the way a disk, a user or a crash would.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
