"""`wap revert` end to end: real `wap run` publishes, the real embedded lakehouse, the real Prefect test server.

Also the lakehouse calls it is built on (`revert_table`, `delete_table`) on real files, and a deterministic race:
main changed after the revert read it (a plan applied late, and a real `wap revert` paused before its merge).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from gate_fixtures import latest_artifact, run_cli
from lakehouse_worker import write_csv
from reliability_helpers import PausedRun, assert_one_line_error

from flows.datasets import get_dataset
from flows.demo.data import generate_titanic
from flows.demo.data import write_csv as write_titanic
from flows.gate.revert import MainMovedError, apply_revert, plan_revert
from flows.lakehouse import (
    MAIN,
    InvalidNameError,
    NothingToRevertError,
    TableExistsError,
    TableNotFoundError,
    connect,
)

pytestmark = pytest.mark.usefixtures("prefect_api")
USER = {"WAP_USER": "alice"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("revert-sources")
    return {
        "first": write_titanic(generate_titanic(120, seed=11), folder / "first.csv"),
        "second": write_titanic(generate_titanic(150, seed=12), folder / "second.csv"),
        "third": write_titanic(generate_titanic(90, seed=13), folder / "third.csv"),
    }


def wap(lake: Path, *args: str):
    return run_cli(*args, "--lakehouse", str(lake), env=USER)


def publish(lake: Path, source: Path) -> str:
    result = wap(lake, "run", "titanic", "--source", str(source))
    assert result.returncode == 0, result.stdout + result.stderr
    return connect("local", lake).get_branch(MAIN).hash


def rows(lake: Path, ref: str = MAIN, table: str = "titanic") -> list[tuple]:
    scanned = connect("local", lake).scan(table, ref=ref)
    return sorted(zip(*(scanned.column(n).to_pylist() for n in scanned.column_names), strict=True))


def gate_branches(lake: Path) -> list[str]:
    return [b.name for b in connect("local", lake).get_branches() if b.name != MAIN]


def test_default_revert_restores_the_state_before_the_last_publish(lakehouse_dir: Path, sources) -> None:
    first = publish(lakehouse_dir, sources["first"])
    second = publish(lakehouse_dir, sources["second"])
    expected = rows(lakehouse_dir, f"{MAIN}@{first}")
    assert rows(lakehouse_dir) != expected

    result = wap(lakehouse_dir, "revert", "titanic", "--reason", "bad batch from the vendor")
    assert result.returncode == 0, result.stdout + result.stderr
    client = connect("local", lakehouse_dir)
    head = client.get_commits(MAIN, limit=1)[0]
    assert f"reverted titanic to {first[:12]} at commit {head.hash}" in result.stdout
    assert "bauplan.titanic: 150 rows -> 120 rows" in result.stdout
    assert rows(lakehouse_dir) == expected
    # One new commit on main, on top of the publish it undoes; both publishes stay in the history.
    assert head.parent_hashes[0] == second
    assert head.message == f"wap: revert titanic to {first[:12]} (bad batch from the vendor)"
    props = head.properties
    assert {k: v for k, v in props.items() if k.startswith("wap.revert.")} == {
        "wap.revert.datasets": "titanic",
        "wap.revert.tables": "bauplan.titanic",
        "wap.revert.to": first,
        "wap.revert.reverted": second,
        "wap.revert.by": "alice",
        "wap.revert.reason": "bad batch from the vendor",
        "wap.revert.branch": props["wap.revert.branch"],  # marks the merge, should its reply be lost
    }
    assert ".wap_revert_titanic_" in props["wap.revert.branch"]
    assert "wap.dataset" not in props  # a revert is not a publish
    history = [c.hash for c in client.get_commits(MAIN)]
    assert first in history and second in history
    assert rows(lakehouse_dir, f"{MAIN}@{second}") != expected  # the undone publish is still readable by hash
    assert gate_branches(lakehouse_dir) == []  # the temporary branch is gone
    log = wap(lakehouse_dir, "log", "--limit", "1")
    assert f"REVERT titanic to {first[:12]}: bad batch from the vendor" in log.stdout
    report = latest_artifact("titanic-revert")
    assert report["type"] == "markdown"
    for needle in (first, second, head.hash, "alice", "bad batch from the vendor", "150 rows", "120 rows"):
        assert needle in report["data"], needle
    assert _reverted_event(head.hash)["resource"]["prefect.resource.id"] == "wap.dataset.titanic"


def _reverted_event(commit: str) -> dict:
    """The `wap.dataset.reverted` event of this revert, read back from the test server (events arrive async)."""
    from prefect.settings import PREFECT_API_URL

    deadline = time.monotonic() + 30
    while True:
        response = httpx.post(
            f"{PREFECT_API_URL.value()}/events/filter",
            json={"filter": {"event": {"name": ["wap.dataset.reverted"]}, "order": "DESC"}, "limit": 50},
            timeout=30,
        )
        response.raise_for_status()
        for event in response.json()["events"]:
            if event["payload"].get("commit") == commit:
                return event
        assert time.monotonic() < deadline, "no wap.dataset.reverted event for the revert"
        time.sleep(0.5)


def test_revert_to_an_earlier_publish_by_prefix(lakehouse_dir: Path, sources) -> None:
    first = publish(lakehouse_dir, sources["first"])
    second = publish(lakehouse_dir, sources["second"])
    third = publish(lakehouse_dir, sources["third"])
    result = wap(lakehouse_dir, "revert", "titanic", "--to", first[:10], "--reason", "back to the audited baseline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows(lakehouse_dir) == rows(lakehouse_dir, f"{MAIN}@{first}")
    props = connect("local", lakehouse_dir).get_commits(MAIN, limit=1)[0].properties
    assert props["wap.revert.to"] == first
    assert props["wap.revert.reverted"] == f"{third},{second}"  # every publish whose state is replaced


def test_revert_refuses_a_commit_that_did_not_publish_it(lakehouse_dir: Path, sources, tmp_path: Path) -> None:
    publish(lakehouse_dir, sources["first"])
    publish(lakehouse_dir, sources["second"])
    client = connect("local", lakehouse_dir)
    root = client.get_commits(MAIN)[-1].hash  # "initialize lakehouse": on main, not a publish
    before = client.get_branch(MAIN).hash
    refused = wap(lakehouse_dir, "revert", "titanic", "--to", root, "--reason", "x")
    assert_one_line_error(refused, (2,), f"commit {root[:12]} did not publish dataset titanic (not a publish)")
    unknown = wap(lakehouse_dir, "revert", "titanic", "--to", "deadbeef", "--reason", "x")
    assert_one_line_error(unknown, (2,), "--to deadbeef: no commit on main has that hash")
    # A publish of another dataset (made directly: a branch with its table, merged with the gate's property).
    client.create_branch("other", MAIN)
    client.create_table("other", str(write_csv(tmp_path / "o.csv", 3)), branch="other")
    other = client.merge_branch("other", MAIN, commit_properties={"wap.dataset": "other_ds"})
    refused = wap(lakehouse_dir, "revert", "titanic", "--to", other[:12], "--reason", "x")
    assert_one_line_error(refused, (2,), f"commit {other[:12]} did not publish dataset titanic (a publish of other_ds)")
    assert client.get_branch(MAIN).hash == other != before
    assert gate_branches(lakehouse_dir) == ["other"]  # no revert branch was made
    # Reverting to the state main already has: nothing to do, exit 2.
    again = wap(lakehouse_dir, "revert", "titanic", "--to", before, "--reason", "x")
    assert_one_line_error(again, (2,), "nothing to revert")


def test_revert_of_a_first_publish_drops_the_table(lakehouse_dir: Path, sources) -> None:
    first = publish(lakehouse_dir, sources["first"])
    result = wap(lakehouse_dir, "revert", "titanic", "--reason", "should never have been published")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bauplan.titanic: 120 rows -> no table" in result.stdout
    client = connect("local", lakehouse_dir)
    assert not client.has_table("titanic", MAIN)
    assert client.has_table("titanic", f"{MAIN}@{first}")
    assert client.get_commits(MAIN, limit=1)[0].properties["wap.revert.reverted"] == first
    # A revert is not a publish: the default now looks at the same publish, whose earlier state main has.
    assert_one_line_error(wap(lakehouse_dir, "revert", "titanic", "--reason", "x"), (2,), "nothing to revert")


def test_revert_needs_a_reason_a_dataset_and_a_publish(lakehouse_dir: Path) -> None:
    assert_one_line_error(wap(lakehouse_dir, "revert", "titanic"), (2,), "--reason is required")
    assert_one_line_error(wap(lakehouse_dir, "revert", "titanic", "--reason", "  "), (2,), "--reason is required")
    assert_one_line_error(wap(lakehouse_dir, "revert", "--reason", "x"), (2,), "give a DATASET or --group")
    assert_one_line_error(wap(lakehouse_dir, "revert", "nope", "--reason", "x"), (2,), "unknown dataset 'nope'")
    no_group = wap(lakehouse_dir, "revert", "--group", "nope", "--reason", "x")
    assert_one_line_error(no_group, (2,), "unknown group 'nope'")
    nothing = wap(lakehouse_dir, "revert", "titanic", "--reason", "x")
    assert_one_line_error(nothing, (2,), "nothing to revert: no commit on main published dataset titanic")


def test_main_moved_between_reading_and_merging_is_refused(lakehouse_dir: Path, sources) -> None:
    publish(lakehouse_dir, sources["first"])
    publish(lakehouse_dir, sources["second"])
    client = connect("local", lakehouse_dir)
    plan = plan_revert(client, [get_dataset("titanic")])
    moved = publish(lakehouse_dir, sources["third"])  # after the plan was read: main's titanic changed
    expected = rows(lakehouse_dir)
    with pytest.raises(MainMovedError, match="main moved under the revert: bauplan.titanic changed"):
        apply_revert(client, plan, reason="too late")
    assert client.get_branch(MAIN).hash == moved and rows(lakehouse_dir) == expected
    assert gate_branches(lakehouse_dir) == []
    # A change to another table meanwhile does not stop it: the revert touches its own tables only.
    plan = plan_revert(client, [get_dataset("titanic")])
    client.create_branch("other", MAIN)
    client.create_table("other", str(sources["first"]), branch="other")
    client.merge_branch("other", MAIN)
    client.delete_branch("other")
    outcome = apply_revert(client, plan, reason="unrelated change")
    assert client.get_branch(MAIN).hash == outcome.commit and client.has_table("other", MAIN)


@pytest.mark.subprocess
def test_a_real_revert_paused_before_its_merge_ends_in_exit_3(lakehouse_dir: Path, sources, prefect_api: str) -> None:
    publish(lakehouse_dir, sources["first"])
    publish(lakehouse_dir, sources["second"])
    env = {**os.environ, **USER, "PREFECT_API_URL": prefect_api}
    paused = PausedRun(
        "revert_merge", ["revert", "titanic", "--reason", "raced", "--lakehouse", str(lakehouse_dir)], env=env
    )
    moved = publish(lakehouse_dir, sources["third"])
    result = paused.resume()
    assert_one_line_error(result, (3,), "error: main moved under the revert", "nothing was reverted")
    client = connect("local", lakehouse_dir)
    assert client.get_branch(MAIN).hash == moved
    assert gate_branches(lakehouse_dir) == []


def test_gc_knows_a_revert_branch() -> None:
    from flows.gate.naming import default_branch_name, is_gate_branch

    assert is_gate_branch(default_branch_name("revert_titanic", "alice"))
    assert is_gate_branch(default_branch_name("revert_shop", "alice"))


def _group_publish(client, tmp_path: Path, tag: int) -> str:
    """One group publish, as `wap run --group shop` records it: every member's table in one merge commit."""
    branch = f"alice.wap_shop_{tag:08x}"
    client.create_branch(branch, MAIN)
    for n, member in enumerate(("customers", "orders", "order_items")):
        source = str(write_csv(tmp_path / f"{member}-{tag}.csv", 3 + n + tag, tag=tag))
        client.create_table(member, source, branch=branch, namespace="shop", replace=True)
        client.import_data(member, source, branch=branch, namespace="shop")
    props = {"wap.group": "shop", "wap.datasets": "customers,orders,order_items"}
    commit = client.merge_branch(branch, MAIN, commit_properties=props)
    client.delete_branch(branch)
    return commit


def test_group_revert_restores_every_member_in_one_commit(lakehouse_dir: Path, tmp_path: Path) -> None:
    client = connect("local", lakehouse_dir)
    first = _group_publish(client, tmp_path, 1)
    second = _group_publish(client, tmp_path, 2)
    result = wap(lakehouse_dir, "revert", "--group", "shop", "--reason", "orders double-counted")
    assert result.returncode == 0, result.stdout + result.stderr
    head = client.get_commits(MAIN, limit=1)[0]
    assert head.parent_hashes[0] == second  # one commit for the whole group
    for member in ("customers", "orders", "order_items"):
        assert rows(lakehouse_dir, table=f"shop.{member}") == rows(lakehouse_dir, f"{MAIN}@{first}", f"shop.{member}")
    props = head.properties
    assert props["wap.revert.group"] == "shop"
    assert props["wap.revert.datasets"] == "customers,orders,order_items"
    assert props["wap.revert.tables"] == "shop.customers,shop.orders,shop.order_items"
    assert (props["wap.revert.to"], props["wap.revert.reverted"]) == (first, second)
    assert latest_artifact("shop-revert") is not None
    assert "REVERT shop to" in wap(lakehouse_dir, "log", "--limit", "1").stdout
    # A single member's revert finds the group publish too (`wap.datasets` lists it).
    assert wap(lakehouse_dir, "revert", "orders", "--to", second, "--reason", "redo").returncode == 0
    assert rows(lakehouse_dir, table="shop.orders") == rows(lakehouse_dir, f"{MAIN}@{second}", "shop.orders")
    assert rows(lakehouse_dir, table="shop.customers") == rows(lakehouse_dir, f"{MAIN}@{first}", "shop.customers")


# ----------------------------------------------------------------------- the lakehouse calls underneath


def test_revert_table_and_delete_table_on_the_embedded_lakehouse(lakehouse_dir: Path, tmp_path: Path) -> None:
    client = connect("local", lakehouse_dir, author="tester")
    client.create_table("t", str(write_csv(tmp_path / "a.csv", 3)), branch=MAIN)
    client.import_data("t", str(tmp_path / "a.csv"), branch=MAIN)
    old = client.get_branch(MAIN).hash
    client.import_data("t", str(write_csv(tmp_path / "b.csv", 2, start=10)), branch=MAIN)
    client.create_branch("dev", MAIN)
    with pytest.raises(TableExistsError):  # as the SDK: the destination has the table and replace is not set
        client.revert_table("t", source_ref=f"{MAIN}@{old}", into_branch="dev")
    reverted = client.revert_table("t", source_ref=f"{MAIN}@{old}", into_branch="dev", replace=True)
    assert reverted.hash == client.get_branch("dev").hash
    assert client.get_table("t", "dev").records == 3
    assert client.get_table("t", "dev").metadata_location == client.get_table("t", f"{MAIN}@{old}").metadata_location
    with pytest.raises(NothingToRevertError):
        client.revert_table("t", source_ref=f"{MAIN}@{old}", into_branch="dev", replace=True)
    with pytest.raises(TableNotFoundError):  # as the SDK: the source state has no such table
        client.revert_table("u", source_ref=MAIN, into_branch="dev", replace=True)
    with pytest.raises(InvalidNameError, match="past commit is read-only"):
        client.revert_table("t", source_ref=MAIN, into_branch=f"dev@{old}", replace=True)
    dropped = client.delete_table("t", "dev")
    assert not client.has_table("t", "dev") and client.has_table("t", f"dev@{reverted.hash}")
    assert dropped.hash == client.get_branch("dev").hash
    with pytest.raises(TableNotFoundError):
        client.delete_table("t", "dev")
    assert client.get_table("t", MAIN).records == 5  # main untouched by writes to dev
    assert isinstance(client.scan("t", ref=f"dev@{reverted.hash}"), pa.Table)
