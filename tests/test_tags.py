"""Tags: immutable names for commits, readable wherever a ref is, on the real embedded lakehouse.

The CLI runs in-process (`run_cli`); the library calls go to the same real files and SQLite catalog.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from gate_fixtures import run_cli
from lakehouse_worker import write_csv
from reliability_helpers import assert_one_line_error

from flows.cli import exit_code_for
from flows.lakehouse import (
    MAIN,
    InvalidNameError,
    RefNotFoundError,
    connect,
)
from flows.lakehouse.doctor import check_lakehouse, rebuild_catalog
from flows.lakehouse.errors import ImmutableTagError, RefNameTakenError, TagExistsError, TagNotFoundError
from flows.lakehouse.local import LocalClient


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """main: table t with 3 rows, then a branch dev; no tag yet."""
    path = tmp_path / "lake"
    client = connect("local", path, author="tester")
    client.create_table("t", str(write_csv(tmp_path / "a.csv", 3)), branch=MAIN)
    client.import_data("t", str(tmp_path / "a.csv"), branch=MAIN)
    client.create_branch("dev", MAIN)
    return path


def more_rows(client: LocalClient, tmp_path: Path, branch: str = MAIN) -> None:
    client.import_data("t", str(write_csv(tmp_path / "b.csv", 2, start=10)), branch=branch)


def wap(lake: Path, *args: str):
    return run_cli(*args, "--lakehouse", str(lake))


def test_tag_list_and_delete_through_the_cli(lake: Path) -> None:
    head = connect("local", lake).get_branch(MAIN).hash
    made = wap(lake, "tag", "v1")
    assert made.returncode == 0, made.stderr
    assert f"tagged main as v1: {head}" in made.stdout
    listed = wap(lake, "tags")
    assert listed.returncode == 0 and "v1" in listed.stdout and head[:12] in listed.stdout
    as_json = json.loads(wap(lake, "tags", "--json").stdout)
    assert [(t["tag"], t["commit"]) for t in as_json] == [("v1", head)]
    assert as_json[0]["created"].endswith("+00:00")
    gone = wap(lake, "tag", "--delete", "v1")
    assert gone.returncode == 0 and f"deleted tag v1 (was {head[:12]})" in gone.stdout
    assert json.loads(wap(lake, "tags", "--json").stdout) == []
    # The commit it named is still main's: deleting a tag deletes no commit.
    assert connect("local", lake).get_branch(MAIN).hash == head


def test_a_tag_of_a_branch_or_a_past_commit(lake: Path, tmp_path: Path) -> None:
    client = connect("local", lake)
    past = client.get_branch(MAIN).hash
    more_rows(client, tmp_path, "dev")
    assert wap(lake, "tag", "at-dev", "--ref", "dev").returncode == 0
    assert wap(lake, "tag", "past", "--ref", f"{MAIN}@{past[:12]}").returncode == 0
    assert client.get_tag("at-dev").hash == client.get_branch("dev").hash
    assert client.get_tag("past").hash == past
    assert wap(lake, "tag", "of-a-tag", "--ref", "past").returncode == 0  # a tag of a tag: the same commit
    assert client.get_tag("of-a-tag").hash == past


def test_every_read_takes_a_tag_as_ref(lake: Path, tmp_path: Path) -> None:
    client = connect("local", lake)
    tagged = client.create_tag("v1", MAIN)
    more_rows(client, tmp_path)  # main moves on: the tag keeps its state
    assert client.get_table("t", MAIN).records == 5
    assert client.get_table("t", "v1").records == 3
    assert client.scan("t", ref="v1").num_rows == 3
    assert client.query("SELECT count(*) AS n FROM t", ref="v1").column("n").to_pylist() == [3]
    assert client.has_table("t", "v1") and not client.has_table("u", "v1")
    assert [c.hash for c in client.get_commits("v1")] == [c.hash for c in client.get_commits(MAIN)][1:]
    assert len(client.data_files("t", ref="v1")[1]) == 1
    assert [t.fqn for t in client.get_tables("v1")] == ["bauplan.t"]
    # A branch made from the tag starts at its commit and is an ordinary branch.
    branch = client.create_branch("from-v1", "v1")
    assert branch.hash == tagged.hash
    more_rows(client, tmp_path, "from-v1")
    assert client.get_table("t", "from-v1").records == 5 and client.get_tag("v1").hash == tagged.hash

    tables = wap(lake, "tables", "--ref", "v1", "--json")
    assert tables.returncode == 0 and json.loads(tables.stdout)[0]["rows"] == 3
    log = json.loads(wap(lake, "log", "--ref", "v1", "--json").stdout)
    assert log[0]["commit"] == tagged.hash
    query = wap(lake, "query", "SELECT count(*) AS n FROM t", "--ref", "v1", "--json")
    assert json.loads(query.stdout) == [{"n": 3}]


def test_a_tag_is_never_written_to(lake: Path, tmp_path: Path) -> None:
    client = connect("local", lake)
    tagged = client.create_tag("v1", MAIN).hash
    source = str(write_csv(tmp_path / "c.csv", 2, start=50))
    attempts = {
        "import_data": lambda: client.import_data("t", source, branch="v1"),
        "create_table": lambda: client.create_table("u", source, branch="v1"),
        "create_table replace": lambda: client.create_table("t", source, branch="v1", replace=True),
        "merge into": lambda: client.merge_branch("dev", "v1"),
        "delete_branch": lambda: client.delete_branch("v1"),
        "delete_table": lambda: client.delete_table("t", "v1"),
        "revert_table": lambda: client.revert_table("t", source_ref="dev", into_branch="v1", replace=True),
        "add_new_columns": lambda: client.add_new_columns("t", source, branch="v1"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(ImmutableTagError, match="v1: it is a tag, and tags are immutable"):
            attempt()
        assert client.get_tag("v1").hash == tagged, what
    assert exit_code_for(ImmutableTagError("v1", "write to")) == 2
    # Merging *from* a tag is a read: allowed.
    more_rows(client, tmp_path, "dev")
    client.create_tag("dev-state", "dev")
    client.merge_branch("dev-state", MAIN)
    assert client.get_table("t", MAIN).records == 5


def test_a_tag_and_a_branch_never_share_a_name(lake: Path) -> None:
    client = connect("local", lake)
    refused = wap(lake, "tag", "dev")
    assert_one_line_error(refused, (2,), "cannot create tag dev: a branch of that name exists")
    assert_one_line_error(wap(lake, "tag", MAIN), (2,), "a branch of that name exists")
    client.create_tag("v1", MAIN)
    with pytest.raises(RefNameTakenError, match="cannot create branch v1: a tag of that name exists"):
        client.create_branch("v1", MAIN)
    assert not client.has_branch("v1")
    # `wap run --branch` of a tag's name fails the same way (exit 2) when it creates its branch.
    assert exit_code_for(RefNameTakenError("v1", "branch", "tag")) == 2
    assert_one_line_error(wap(lake, "tag", "v1"), (2,), "tag already exists: v1")
    with pytest.raises(TagExistsError):
        client.create_tag("v1", "dev")


@pytest.mark.parametrize("name", ["bad..name", "a/b", "-x", "x y", "v1@abc", "", "t" * 201, "../../etc"])
def test_bad_tag_names_are_refused(lake: Path, name: str) -> None:
    if not name.startswith("-"):  # the command line reads "-x" as an option (a usage error, exit 2 too)
        assert_one_line_error(wap(lake, "tag", name), (2,), "invalid tag name")
    with pytest.raises(InvalidNameError, match="invalid tag name"):
        connect("local", lake).create_tag(name, MAIN)
    assert connect("local", lake).get_tags() == []


def test_unknown_refs_and_tags(lake: Path) -> None:
    assert_one_line_error(wap(lake, "tag", "v1", "--ref", "nope"), (2,), "branch not found: nope")
    assert_one_line_error(wap(lake, "tag", "v1", "--ref", f"{MAIN}@deadbeef00"), (2,), "ref not found")
    assert_one_line_error(wap(lake, "tag", "--delete", "nope"), (2,), "tag not found: nope")
    assert_one_line_error(wap(lake, "tables", "--ref", "nope"), (2,), "nope")
    assert_one_line_error(wap(lake, "tag", "v1", "--delete", "--ref", "dev"), (2,), "--delete takes only")
    client = connect("local", lake)
    with pytest.raises(TagNotFoundError) as missing:
        client.get_tag(MAIN)  # a branch is not a tag
    assert isinstance(missing.value, RefNotFoundError)
    assert not client.has_tag(MAIN) and client.get_tags() == []


def test_a_catalog_without_a_tags_table_opens_and_gets_one_on_the_first_tag(lake: Path) -> None:
    # A catalog made before tags existed has no tags table: every read works and the first tag creates it.
    def tables() -> set[str]:
        with sqlite3.connect(lake / "catalog.db") as con:
            return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    assert "tags" not in tables()
    client = connect("local", lake)
    assert client.get_tags() == [] and not client.has_tag("v1")
    assert check_lakehouse(lake).healthy
    client.create_tag("v1", MAIN)
    assert "tags" in tables()
    assert check_lakehouse(lake).healthy


def test_rebuild_restores_tags_from_the_journal(lake: Path, tmp_path: Path) -> None:
    client = connect("local", lake)
    v1 = client.create_tag("v1", MAIN).hash
    more_rows(client, tmp_path)
    v2 = client.create_tag("v2", MAIN).hash
    client.create_tag("gone", "dev")
    client.delete_tag("gone")
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (lake / name).unlink(missing_ok=True)
    report = rebuild_catalog(lake)
    assert [(o.branch, o.status) for o in report.tags] == [("v1", "kept"), ("v2", "kept")]
    rebuilt = connect("local", lake)
    assert {t.name: t.hash for t in rebuilt.get_tags()} == {"v1": v1, "v2": v2}
    assert rebuilt.get_table("t", "v1").records == 3 and rebuilt.get_table("t", "v2").records == 5
    assert check_lakehouse(lake).healthy
    # A second rebuild, now from the rebuilt catalog and the journal it completed, keeps them as they are.
    again = rebuild_catalog(lake)
    assert [(o.branch, o.status) for o in again.tags] == [("v1", "kept"), ("v2", "kept")]
    shown = run_cli("doctor", "--rebuild", "--lakehouse", str(lake))
    assert shown.returncode == 0 and f"tag v1: at {v1[:12]}" in shown.stdout and "2 tags" in shown.stdout
