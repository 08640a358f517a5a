"""Branches, commits, time travel, merges, deletes and names of the embedded lakehouse.

Everything runs against the real backend: Iceberg files written by pyiceberg, refs in a real SQLite
catalog. One behaviour per test.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lakehouse_worker import count_files, write_csv
from pyiceberg.table import StaticTable

from flows.lakehouse import (
    MAIN,
    BranchExistsError,
    BranchNotFoundError,
    InvalidNameError,
    MergeConflictError,
    RefNotFoundError,
    TableNotFoundError,
    connect,
)
from flows.lakehouse.local import LocalClient
from flows.lakehouse.refs import RefStore


@pytest.fixture
def csvs(tmp_path: Path) -> dict[str, Path]:
    """Small sources with distinct row counts, so a count tells which imports a table holds."""
    return {
        "a": write_csv(tmp_path / "src" / "a.csv", 3, start=0),
        "b": write_csv(tmp_path / "src" / "b.csv", 5, start=100),
        "c": write_csv(tmp_path / "src" / "c.csv", 7, start=200),
    }


def rows(client: LocalClient, table: str, ref: str) -> int:
    return client.scan(table, ref=ref).num_rows


def head(client: LocalClient, branch: str = MAIN) -> str:
    return client.get_branch(branch).hash


def commit_count(client: LocalClient) -> int:
    # Read-only peek at the catalog: counts commits on every branch, reachable or not.
    with sqlite3.connect(client.root / "catalog.db") as con:
        return con.execute("SELECT count(*) FROM commits").fetchone()[0]


def add_table(client: LocalClient, table: str, source: Path, branch: str = MAIN) -> None:
    client.create_table(table, str(source), branch=branch)
    client.import_data(table, str(source), branch=branch)


# ------------------------------------------------------------------------------- branches are catalog-wide
def test_table_created_on_branch_is_absent_on_main_until_merge(lakehouse: LocalClient, csvs) -> None:
    lakehouse.create_branch("dev", MAIN)
    add_table(lakehouse, "t", csvs["a"], branch="dev")

    assert lakehouse.has_table("t", "dev") and rows(lakehouse, "t", "dev") == 3
    assert not lakehouse.has_table("t", MAIN)
    assert lakehouse.get_tables(MAIN) == []
    with pytest.raises(TableNotFoundError):
        lakehouse.scan("t", ref=MAIN)

    lakehouse.merge_branch("dev", MAIN)
    assert rows(lakehouse, "t", MAIN) == 3


def test_table_changed_on_branch_is_unchanged_on_main_until_merge(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    lakehouse.create_branch("dev", MAIN)
    before = head(lakehouse)

    lakehouse.import_data("t", str(csvs["b"]), branch="dev")

    assert rows(lakehouse, "t", "dev") == 8
    assert rows(lakehouse, "t", MAIN) == 3 and head(lakehouse) == before
    lakehouse.merge_branch("dev", MAIN)
    assert rows(lakehouse, "t", MAIN) == 8


def test_changes_on_main_after_branching_are_not_seen_on_the_branch(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    lakehouse.create_branch("dev", MAIN)
    lakehouse.import_data("t", str(csvs["b"]), branch=MAIN)
    add_table(lakehouse, "u", csvs["c"])

    assert rows(lakehouse, "t", "dev") == 3
    assert not lakehouse.has_table("u", "dev")


def test_create_branch_copies_no_data_file(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    add_table(lakehouse, "u", csvs["b"])
    files_before = count_files(lakehouse.warehouse)
    bytes_before = sum(p.stat().st_size for p in lakehouse.warehouse.rglob("*") if p.is_file())

    for i in range(20):
        lakehouse.create_branch(f"dev{i}", MAIN)

    assert count_files(lakehouse.warehouse) == files_before
    assert sum(p.stat().st_size for p in lakehouse.warehouse.rglob("*") if p.is_file()) == bytes_before
    assert rows(lakehouse, "u", "dev19") == 5  # and the branches do read the tables


def test_create_existing_branch_is_refused(lakehouse: LocalClient) -> None:
    lakehouse.create_branch("dev", MAIN)
    with pytest.raises(BranchExistsError):
        lakehouse.create_branch("dev", MAIN)


# ------------------------------------------------------------------------------------------------ commits
def test_every_change_is_one_commit_with_its_metadata(lakehouse: LocalClient, csvs) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    lakehouse.create_branch("dev", MAIN)
    history = [head(lakehouse, "dev")]

    lakehouse.create_table("t", str(csvs["a"]), branch="dev")
    history.append(head(lakehouse, "dev"))
    lakehouse.import_data("t", str(csvs["a"]), branch="dev")
    history.append(head(lakehouse, "dev"))

    commits = lakehouse.get_commits("dev")
    assert [c.hash for c in commits[:3]] == history[::-1]
    create, imported = commits[1], commits[0]
    for commit, parent in ((create, history[0]), (imported, history[1])):
        assert re.fullmatch(r"[0-9a-f]{64}", commit.hash)
        assert commit.parent_hashes == [parent]
        assert commit.author == "tester"
        assert started <= commit.authored_date <= datetime.now(UTC) + timedelta(seconds=5)
    assert "create table bauplan.t" in create.message
    assert create.properties["wap.operation"] == "create_table"
    assert "import data into bauplan.t" in imported.message
    assert imported.properties == {
        "wap.operation": "import_data",
        "wap.source": str(csvs["a"]),
        "wap.rows": "3",
    }


def test_merge_is_a_commit_with_both_parents_message_and_properties(lakehouse: LocalClient, csvs) -> None:
    lakehouse.create_branch("dev", MAIN)
    add_table(lakehouse, "t", csvs["a"], branch="dev")
    main_before, dev_head = head(lakehouse), head(lakehouse, "dev")

    new_head = lakehouse.merge_branch(
        "dev", MAIN, commit_message="publish t", commit_properties={"wap.audit": "passed"}
    )

    merge = lakehouse.get_commits(MAIN, limit=1)[0]
    assert new_head == merge.hash == head(lakehouse)
    assert merge.parent_hashes == [main_before, dev_head]
    assert merge.message == "publish t"
    assert merge.properties == {"wap.audit": "passed"}


def test_get_commits_limit_returns_the_newest(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    lakehouse.import_data("t", str(csvs["b"]), branch=MAIN)
    everything = lakehouse.get_commits(MAIN)
    assert len(everything) == 4  # initialize, create, 2 imports
    assert lakehouse.get_commits(MAIN, limit=2) == everything[:2]


def test_ref_at_hash_reads_the_past(lakehouse: LocalClient, csvs) -> None:
    lakehouse.create_table("t", str(csvs["a"]), branch=MAIN)
    expected: dict[str, int] = {head(lakehouse): 0}
    total = 0
    for name in ("a", "b", "c"):
        total += lakehouse.import_data("t", str(csvs[name]), branch=MAIN).rows
        expected[head(lakehouse)] = total

    for commit_hash, count in expected.items():
        assert rows(lakehouse, "t", f"main@{commit_hash}") == count
        assert rows(lakehouse, "t", f"main@{commit_hash[:12]}") == count  # an unambiguous prefix
        assert lakehouse.get_table("t", f"main@{commit_hash}").records == count
    assert rows(lakehouse, "t", MAIN) == 15


def test_ref_at_hash_sees_the_tables_of_that_commit(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    old = head(lakehouse)
    add_table(lakehouse, "u", csvs["b"])
    assert [t.name for t in lakehouse.get_tables(f"main@{old}")] == ["t"]
    assert not lakehouse.has_table("u", f"main@{old}")


def test_past_ref_is_read_only(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    old = head(lakehouse)
    lakehouse.import_data("t", str(csvs["b"]), branch=MAIN)
    before, files = head(lakehouse), count_files(lakehouse.root)

    with pytest.raises(InvalidNameError, match="read-only"):
        lakehouse.import_data("t", str(csvs["c"]), branch=f"main@{old}")
    with pytest.raises(InvalidNameError, match="read-only"):
        lakehouse.create_table("v", str(csvs["c"]), branch=f"main@{old}")

    assert head(lakehouse) == before and count_files(lakehouse.root) == files


@pytest.mark.parametrize(
    "ref",
    [
        "main@" + "0" * 64,  # well-formed, no such commit
        "main@deadbeef",
        "main@xyz",  # not hex
        "main@",
        "main@abc",  # too short to be a hash
        "main@" + "a" * 65,
        "nosuchbranch@deadbeef",
    ],
)
def test_bad_or_unknown_hash_is_ref_not_found(lakehouse: LocalClient, csvs, ref: str) -> None:
    add_table(lakehouse, "t", csvs["a"])
    with pytest.raises(RefNotFoundError):
        lakehouse.scan("t", ref=ref)
    with pytest.raises(RefNotFoundError):
        lakehouse.get_commits(ref)


def test_hash_of_another_branch_is_not_a_ref_of_main(lakehouse: LocalClient, csvs) -> None:
    lakehouse.create_branch("dev", MAIN)
    add_table(lakehouse, "t", csvs["a"], branch="dev")
    with pytest.raises(RefNotFoundError):
        lakehouse.scan("t", ref=f"main@{head(lakehouse, 'dev')}")


def test_unknown_branch_is_branch_not_found(lakehouse: LocalClient) -> None:
    with pytest.raises(BranchNotFoundError):
        lakehouse.get_commits("nosuch")
    with pytest.raises(BranchNotFoundError):
        lakehouse.create_branch("dev", "nosuch")
    assert not lakehouse.has_branch("nosuch")


# -------------------------------------------------------------------------------------------------- merges
def test_merge_is_atomic_across_every_table_changed(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "existing", csvs["a"])
    lakehouse.create_branch("dev", MAIN)
    add_table(lakehouse, "t1", csvs["a"], branch="dev")
    add_table(lakehouse, "t2", csvs["b"], branch="dev")
    lakehouse.import_data("existing", str(csvs["c"]), branch="dev")
    before = head(lakehouse)

    after = lakehouse.merge_branch("dev", MAIN)

    # One commit on main, and it holds every change; the commit before holds none of them.
    assert lakehouse.get_commits(MAIN, limit=1)[0].parent_hashes[0] == before
    assert {t.name: t.records for t in lakehouse.get_tables(f"main@{before}")} == {"existing": 3}
    assert {t.name: t.records for t in lakehouse.get_tables(f"main@{after}")} == {
        "existing": 10,
        "t1": 3,
        "t2": 5,
    }


def test_fast_forward_merge_takes_the_source_tree(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    lakehouse.create_branch("dev", MAIN)
    lakehouse.import_data("t", str(csvs["b"]), branch="dev")
    add_table(lakehouse, "u", csvs["c"], branch="dev")

    lakehouse.merge_branch("dev", MAIN)

    def tree(ref: str) -> dict[str, str | None]:
        return {t.fqn: t.metadata_location for t in lakehouse.get_tables(ref)}

    assert tree(MAIN) == tree("dev")
    assert lakehouse.store.tree(head(lakehouse)) == lakehouse.store.tree(head(lakehouse, "dev"))


def test_conflict_names_the_table_and_leaves_the_target_exactly_as_it_was(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    add_table(lakehouse, "u", csvs["a"])
    lakehouse.create_branch("dev", MAIN)
    lakehouse.import_data("t", str(csvs["b"]), branch="dev")
    lakehouse.import_data("u", str(csvs["b"]), branch="dev")  # only on dev: must not leak into main
    lakehouse.import_data("t", str(csvs["c"]), branch=MAIN)
    before = head(lakehouse)
    snapshot = {name: lakehouse.scan(name, ref=MAIN).sort_by("id") for name in ("t", "u")}
    commits = commit_count(lakehouse)

    with pytest.raises(MergeConflictError, match=r"bauplan\.t") as info:
        lakehouse.merge_branch("dev", MAIN)

    assert info.value.tables == ["bauplan.t"]
    assert head(lakehouse) == before and commit_count(lakehouse) == commits
    for name, table in snapshot.items():
        assert lakehouse.scan(name, ref=MAIN).sort_by("id").equals(table)


def test_changes_to_different_tables_on_both_sides_merge_cleanly(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    add_table(lakehouse, "u", csvs["a"])
    lakehouse.create_branch("dev", MAIN)
    lakehouse.import_data("u", str(csvs["b"]), branch="dev")
    lakehouse.import_data("t", str(csvs["c"]), branch=MAIN)
    main_before, dev_head = head(lakehouse), head(lakehouse, "dev")

    lakehouse.merge_branch("dev", MAIN)

    assert rows(lakehouse, "t", MAIN) == 10  # main's own change kept
    assert rows(lakehouse, "u", MAIN) == 8  # the branch's change brought in
    assert lakehouse.get_commits(MAIN, limit=1)[0].parent_hashes == [main_before, dev_head]


def test_merging_an_already_merged_branch_changes_nothing(lakehouse: LocalClient, csvs) -> None:
    lakehouse.create_branch("dev", MAIN)
    add_table(lakehouse, "t", csvs["a"], branch="dev")
    merged = lakehouse.merge_branch("dev", MAIN)
    commits = commit_count(lakehouse)
    assert lakehouse.merge_branch("dev", MAIN) == merged
    assert commit_count(lakehouse) == commits


@contextmanager
def counting_sqlite_steps() -> Iterator[list[int]]:
    """Count the SQLite VM steps (in hundreds) the ref store runs inside the block: work, not wall time."""
    steps = [0]
    original = RefStore._connect

    @contextmanager
    def counting(self: RefStore) -> Iterator[sqlite3.Connection]:
        with original(self) as con:
            con.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1), 100)
            yield con

    RefStore._connect = counting
    try:
        yield steps
    finally:
        RefStore._connect = original


def add_history(client: LocalClient, commits: int) -> None:
    """Commits through the store's own commit insertion, in one transaction (setup speed)."""
    store = client.store
    with store._connect() as con, store._write(con):
        commit = store._head(con, MAIN)
        for i in range(commits):
            commit = store._insert_commit(con, commit, None, f"c{i}", "tester", {}, {"bauplan.filler": f"loc{i}"})
        con.execute("UPDATE refs SET hash = ? WHERE name = ?", (commit, MAIN))


def test_merge_and_log_work_does_not_grow_with_history(lakehouse: LocalClient, csvs, tmp_path: Path) -> None:
    def merge_and_log(client: LocalClient) -> int:
        client.create_branch("dev", MAIN)
        client.create_table("t", str(csvs["a"]), branch="dev")
        client.create_table("u", str(csvs["a"]), branch=MAIN)  # main moved: a real three-way merge
        with counting_sqlite_steps() as steps:
            client.merge_branch("dev", MAIN)
            client.get_commits(MAIN, limit=10)
        assert client.has_table("t", MAIN) and client.has_table("u", MAIN)
        return steps[0]

    add_history(lakehouse, 20_000)
    first = lakehouse.get_commits(MAIN)[-1].hash
    shorter = connect("local", tmp_path / "shorter")
    add_history(shorter, 2_000)
    long_steps, short_steps = merge_and_log(lakehouse), merge_and_log(shorter)
    # Work counted in SQLite steps, which a busy machine cannot blur as it does a timing: a walk of the
    # whole history (what this replaced) does 10x the work for 10x the commits; bounded walks the same.
    assert long_steps <= 1.5 * short_steps + 2, f"{long_steps}00 SQLite steps for 20k commits vs {short_steps}00 for 2k"
    assert lakehouse.store.resolve(f"main@{first}").hash == first  # the root is still an ancestor


# --------------------------------------------------------------------------------------------------- deletes
def test_deleting_a_merged_branch_keeps_what_main_reads(lakehouse: LocalClient, csvs) -> None:
    lakehouse.create_branch("dev", MAIN)
    add_table(lakehouse, "t", csvs["a"], branch="dev")
    dev_head = head(lakehouse, "dev")
    lakehouse.merge_branch("dev", MAIN)
    files = count_files(lakehouse.warehouse)

    assert lakehouse.delete_branch("dev")

    assert not lakehouse.has_branch("dev")
    assert rows(lakehouse, "t", MAIN) == 3
    assert count_files(lakehouse.warehouse) == files
    assert dev_head in {c.hash for c in lakehouse.get_commits(MAIN)}  # history is kept
    assert rows(lakehouse, "t", f"main@{dev_head}") == 3


def test_deleting_an_unmerged_branch_leaves_main_intact(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    lakehouse.create_branch("dev", MAIN)
    lakehouse.import_data("t", str(csvs["b"]), branch="dev")
    before, files = head(lakehouse), count_files(lakehouse.warehouse)

    lakehouse.delete_branch("dev")

    assert head(lakehouse) == before and rows(lakehouse, "t", MAIN) == 3
    assert count_files(lakehouse.warehouse) == files


def test_a_deleted_branch_name_can_be_reused_from_scratch(lakehouse: LocalClient, csvs) -> None:
    lakehouse.create_branch("dev", MAIN)
    add_table(lakehouse, "t", csvs["a"], branch="dev")
    lakehouse.delete_branch("dev")
    lakehouse.create_branch("dev", MAIN)
    assert not lakehouse.has_table("t", "dev")


def test_deleting_main_or_an_unknown_branch_is_refused(lakehouse: LocalClient) -> None:
    with pytest.raises(InvalidNameError):
        lakehouse.delete_branch(MAIN)
    with pytest.raises(BranchNotFoundError):
        lakehouse.delete_branch("nosuch")
    assert lakehouse.has_branch(MAIN)


# ---------------------------------------------------------------------------------------------------- names
BAD_NAMES = [
    "",
    " ",
    "a b",
    "..",
    "../etc",
    "a/../b",
    "a/b",
    "/abs",
    "a\\b",
    "'",
    '"',
    "a'b",
    'a"b',
    "a;b",
    "x'; DROP TABLE refs; --",
    "1 OR 1=1",
    "a\x00b",
    "a\nb",
    "a\tb",
    "a\x1b[31m",
    "caf\u00e9",
    "a" * 300,
]
BAD_BRANCHES = [*BAD_NAMES, "a..b", ".hidden", "trailing.", "-dash", "a@b"]
BAD_IDENTIFIERS = [*BAD_NAMES, "1starts_with_digit", "has-dash", "a" * 129]


def _footprint(client: LocalClient) -> tuple[set[str], int, list]:
    paths = {str(p.relative_to(client.root)) for p in client.root.rglob("*")}
    paths = {p for p in paths if not p.startswith("catalog.db")}  # WAL files come and go
    return paths, commit_count(client), client.get_branches()


@pytest.fixture
def populated(lakehouse: LocalClient, csvs) -> LocalClient:
    add_table(lakehouse, "t", csvs["a"])
    return lakehouse


@pytest.mark.parametrize("name", BAD_BRANCHES)
def test_invalid_branch_names_are_refused_before_anything_is_written(populated: LocalClient, csvs, name) -> None:
    before = _footprint(populated)
    attempts = [
        lambda: populated.create_branch(name, MAIN),
        lambda: populated.create_branch("ok", name),
        lambda: populated.import_data("t", str(csvs["b"]), branch=name),
        lambda: populated.create_table("v", str(csvs["b"]), branch=name),
        lambda: populated.merge_branch(name, MAIN),
        lambda: populated.merge_branch(MAIN, name),
        lambda: populated.delete_branch(name),
        lambda: populated.has_branch(name),
        lambda: populated.get_commits(name),
        lambda: populated.scan("t", ref=name),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidNameError):
            attempt()
    assert _footprint(populated) == before


@pytest.mark.parametrize("name", BAD_IDENTIFIERS)
def test_invalid_table_and_namespace_names_are_refused_before_anything_is_written(
    populated: LocalClient, csvs, name
) -> None:
    before = _footprint(populated)
    attempts = [
        lambda: populated.create_table(name, str(csvs["b"]), branch=MAIN),
        lambda: populated.create_table("v", str(csvs["b"]), branch=MAIN, namespace=name),
        lambda: populated.import_data(name, str(csvs["b"]), branch=MAIN),
        lambda: populated.import_data("t", str(csvs["b"]), branch=MAIN, namespace=name),
        lambda: populated.scan(name, ref=MAIN),
        lambda: populated.has_table(name, MAIN),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidNameError):
            attempt()
    assert _footprint(populated) == before


@pytest.mark.parametrize("name", ["dev", "alice.feature_x", "user.fix-1", "a" * 200, "Release_2024.rc-1"])
def test_valid_branch_names_work(lakehouse: LocalClient, name: str) -> None:
    lakehouse.create_branch(name, MAIN)
    assert lakehouse.has_branch(name)


def test_qualified_table_name_and_namespace_argument_agree(lakehouse: LocalClient, csvs) -> None:
    lakehouse.create_table("raw.events", str(csvs["a"]), branch=MAIN)
    lakehouse.import_data("events", str(csvs["a"]), branch=MAIN, namespace="raw")
    assert rows(lakehouse, "raw.events", MAIN) == 3
    with pytest.raises(InvalidNameError):
        lakehouse.scan("raw.events", ref=MAIN, namespace="other")


# ------------------------------------------------------------------------------------- other Iceberg readers
def test_static_table_reads_the_same_rows_through_the_metadata_location(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    old = head(lakehouse)
    lakehouse.create_branch("dev", MAIN)
    lakehouse.import_data("t", str(csvs["b"]), branch="dev")
    lakehouse.merge_branch("dev", MAIN)

    for ref, count in ((MAIN, 8), (f"main@{old}", 3)):
        location = lakehouse.get_table("t", ref).metadata_location
        theirs = StaticTable.from_metadata(location).scan().to_arrow().sort_by("id")
        ours = lakehouse.scan("t", ref=ref).sort_by("id")
        assert theirs.num_rows == count
        assert theirs.equals(ours)


def test_pyarrow_reads_the_data_files(lakehouse: LocalClient, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    lakehouse.import_data("t", str(csvs["c"]), branch=MAIN)

    schema, files = lakehouse.data_files("t", ref=MAIN)

    assert len(files) == 2
    assert all(Path(f).is_relative_to(lakehouse.warehouse) for f in files)
    table = pa.concat_tables(pq.read_table(f).select(schema.names).cast(schema) for f in files)
    # Compared as values: pyiceberg's scan returns large_string where the files hold string.
    assert table.sort_by("id").to_pylist() == lakehouse.scan("t", ref=MAIN).sort_by("id").to_pylist()


def test_a_second_client_sees_the_same_catalog(lakehouse: LocalClient, lakehouse_dir: Path, csvs) -> None:
    add_table(lakehouse, "t", csvs["a"])
    other = connect("local", lakehouse_dir)
    assert other.get_branch(MAIN) == lakehouse.get_branch(MAIN)
    assert rows(other, "t", MAIN) == 3


def test_lakehouse_path_with_space_unicode_and_url_characters(tmp_path: Path, csvs) -> None:
    # Table locations were file:// URIs, percent-encoded; pyiceberg does not decode them, so every
    # file went to a sibling directory literally named "my%20lake%C3%A9..." outside the lakehouse.
    parent = tmp_path / "parent"
    root = parent / "my lake é #1?"
    client = connect("local", root)
    add_table(client, "t", csvs["a"])
    client.create_branch("dev", MAIN)
    client.import_data("t", str(csvs["b"]), branch="dev")
    client.merge_branch("dev", MAIN)

    assert [p.name for p in parent.iterdir()] == [root.name]  # nothing written beside the lakehouse
    schema, files = client.data_files("t", ref=MAIN)
    assert files and all(Path(f).is_file() and Path(f).is_relative_to(root) for f in files)
    location = client.get_table("t", MAIN).metadata_location
    assert StaticTable.from_metadata(location).scan().to_arrow().num_rows == 8
    assert client.query("SELECT count(*) AS n FROM t", ref=MAIN).to_pylist() == [{"n": 8}]
