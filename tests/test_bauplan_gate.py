# ruff: noqa: F811  (the `bauplan_standin` fixture is imported, then named by each test)
"""The whole gate through `BauplanClient`, over the SDK stand-in (`tests/bauplan_standin.py`).

The hosted service is unreachable here, so `bauplan.Client` is the stand-in: every SDK call the gate makes is bound
against the installed SDK's signatures, answered with objects carrying the SDK classes' attributes, and carried
out on an embedded lakehouse with real branches and merges. The gate itself is the real one: `wap run` (replace,
append, groups, --all), `wap revert`, conflicts, a lost merge reply and forbidden branches, with a real Prefect
server, the shipped GX project and real data.
"""

from __future__ import annotations

from pathlib import Path

import bauplan.exceptions as bx
import pytest
from bauplan_standin import bauplan_standin, http_error, put_s3_object, subprocess_env  # noqa: F401  (a fixture)
from gate_fixtures import run_cli

from flows.demo.data import corrupt, generate_titanic
from flows.lakehouse import MAIN, connect

pytestmark = pytest.mark.usefixtures("prefect_api")


def titanic(sdk, name: str, rows: int = 300, *, seed: int = 1, first_id: int = 1, defect: str | None = None) -> str:
    """A titanic-shaped Parquet object on the stand-in's S3; its s3:// URI."""
    table = generate_titanic(rows, seed=seed, first_id=first_id)
    if defect is not None:
        table = corrupt(table, defect)
    uri = f"s3://wap-test/{name}.parquet"
    put_s3_object(sdk, uri, table)
    return uri


def lake(sdk):
    """The gate's view of the lakehouse: the Bauplan backend, as `wap` connects to it."""
    return connect("bauplan")


def main_rows(sdk, table: str = "bauplan.titanic") -> int:
    return lake(sdk).query(f"SELECT count(*) AS n FROM {table}", ref=MAIN).column("n")[0].as_py()


def test_wap_run_replace_publishes_through_the_sdk(bauplan_standin) -> None:
    sdk = bauplan_standin
    uri = titanic(sdk, "clean")
    result = run_cli("run", "titanic", "--source", uri, "--backend", "bauplan")
    assert result.returncode == 0, result.stdout + result.stderr
    assert main_rows(sdk) == 300
    [merge] = sdk.called("merge_branch")
    assert merge["into_branch"] == MAIN
    branch, _, audited = merge["source_ref"].partition("@")
    assert branch.startswith(f"{sdk.username}.wap_titanic_")  # Bauplan's rule: the username first
    head = next(iter(lake(sdk).get_commits(MAIN, limit=1)))
    assert head.properties["wap.audited_commit"] == audited
    assert f"at commit {head.hash}" in result.stdout
    assert not lake(sdk).has_branch(branch)


def test_a_blocked_run_never_reaches_main_and_its_branch_is_deleted(bauplan_standin) -> None:
    sdk = bauplan_standin
    assert run_cli("run", "titanic", "--source", titanic(sdk, "clean"), "--backend", "bauplan").returncode == 0
    head = lake(sdk).get_branch(MAIN).hash
    bad = titanic(sdk, "bad", seed=2, defect="null_survived")
    result = run_cli("run", "titanic", "--source", bad, "--backend", "bauplan")
    assert result.returncode == 1, result.stdout + result.stderr
    assert lake(sdk).get_branch(MAIN).hash == head
    assert len(sdk.called("merge_branch")) == 1  # only the clean run's
    gate = [b.name for b in lake(sdk).get_branches() if ".wap_" in b.name]
    assert gate == []  # the rollback hook deleted the failed branch through the SDK


def test_an_append_is_staged_audited_and_published_through_the_sdk(bauplan_standin) -> None:
    sdk = bauplan_standin
    first = titanic(sdk, "day1", 200)
    assert run_cli("run", "titanic", "--source", first, "--backend", "bauplan", "--mode", "append").returncode == 0
    second = titanic(sdk, "day2", 50, seed=3, first_id=201)
    result = run_cli("run", "titanic", "--source", second, "--backend", "bauplan", "--mode", "append")
    assert result.returncode == 0, result.stdout + result.stderr
    assert main_rows(sdk) == 250
    head = next(iter(lake(sdk).get_commits(MAIN, limit=1)))
    assert (head.properties["wap.mode"], head.properties["wap.added_rows"]) == ("append", "50")
    # The batch was staged alone on the gate branch's staging branch, which is gone afterwards.
    staged = [c["branch"] for c in sdk.called("create_branch") if c["branch"].endswith("_batch")]
    assert len(staged) == 2 and not any(lake(sdk).has_branch(b) for b in staged)


def test_a_lost_merge_reply_is_recovered_from_mains_history(bauplan_standin) -> None:
    """The service merged, then the connection dropped: the gate finds its commit on main by its marker and
    reports it published (exit 0), instead of 'not published' with main moved."""
    sdk = bauplan_standin
    sdk.faults.lose_reply("merge_branch")
    result = run_cli("run", "titanic", "--source", titanic(sdk, "clean"), "--backend", "bauplan")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reply to the merge was lost" in result.stdout + result.stderr  # the flow's log
    head = next(iter(lake(sdk).get_commits(MAIN, limit=1)))
    assert f"at commit {head.hash}" in result.stdout
    assert main_rows(sdk) == 300
    [merge] = sdk.called("merge_branch")
    assert head.properties["wap.audited_commit"] == merge["source_ref"].partition("@")[2]
    assert [c["filter_by_properties"] for c in sdk.called("get_commits") if c.get("filter_by_properties")] == [
        {
            "wap.branch": merge["source_ref"].partition("@")[0],
            "wap.audited_commit": head.properties["wap.audited_commit"],
        }
    ]


def test_a_lost_merge_reply_with_main_unreadable_says_the_merge_may_have_landed(bauplan_standin) -> None:
    sdk = bauplan_standin
    sdk.faults.lose_reply("merge_branch")
    sdk.faults.fail("get_commits", http_error(bx.ServiceUnavailableError, "down"), times=None, when=None)
    result = run_cli("run", "titanic", "--source", titanic(sdk, "clean"), "--backend", "bauplan")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "could not be read to see whether the merge landed" in result.stderr
    assert "check `wap log`" in result.stderr


def test_a_merge_that_did_not_land_is_not_published(bauplan_standin) -> None:
    sdk = bauplan_standin
    sdk.faults.fail("merge_branch", http_error(bx.ServiceUnavailableError, "busy"), times=1)
    result = run_cli("run", "titanic", "--source", titanic(sdk, "clean"), "--backend", "bauplan")
    assert result.returncode == 3, result.stdout + result.stderr
    assert not lake(sdk).has_table("titanic", MAIN)


def test_a_branch_outside_the_username_is_refused_naming_the_rule(bauplan_standin) -> None:
    sdk = bauplan_standin
    result = run_cli(
        "run", "titanic", "--source", titanic(sdk, "clean"), "--backend", "bauplan", "--branch", "someone.else"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "permission denied" in line and "create branch someone.else" in line
    assert f"does not start with '{sdk.username}.'" in line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("status", ["TIMEOUT", "HEARTBEAT_FAILURE"])
def test_an_import_the_runner_did_not_finish_is_retried(bauplan_standin, status: str) -> None:
    sdk = bauplan_standin
    sdk.faults.import_status(status, "runner lost")
    result = run_cli("run", "titanic", "--source", titanic(sdk, "clean"), "--backend", "bauplan")
    assert result.returncode == 0, result.stdout + result.stderr
    assert main_rows(sdk) == 300
    assert len(sdk.called("create_branch")) == 2  # the write task ran again from a fresh branch


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED"])
def test_a_failed_import_is_not_retried_and_leaves_nothing(bauplan_standin, status: str) -> None:
    sdk = bauplan_standin
    sdk.faults.import_status(status, "bad file")
    result = run_cli("run", "titanic", "--source", titanic(sdk, "clean"), "--backend", "bauplan")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"status {status}" in result.stderr and "bad file" in result.stderr
    assert len(sdk.called("create_branch")) == 1
    assert not lake(sdk).has_table("titanic", MAIN)
    assert [b.name for b in lake(sdk).get_branches()] == [MAIN]


# --------------------------------------------------------------- real processes against one stand-in lakehouse


@pytest.mark.subprocess
def test_main_moved_under_a_paused_append_is_a_conflict_not_a_publish(bauplan_standin, prefect_api) -> None:
    """Two appends to one table: the second publishes while the first waits before its publish. On Bauplan the
    batch cannot be rebased (no data-file access), so the first ends in a merge conflict: exit 3, main holds the
    second batch only, the first's branch is cleaned up."""
    from reliability_helpers import PausedRun, assert_one_line_error, gate_env

    sdk = bauplan_standin
    env = subprocess_env(sdk.root, base=gate_env(prefect_api))
    assert run_cli("run", "titanic", "--source", titanic(sdk, "day1", 100), "--mode", "append").returncode == 0
    first = titanic(sdk, "day2", 20, seed=4, first_id=101)
    paused = PausedRun("publish", ["run", "titanic", "--source", first, "--mode", "append"], env)
    try:
        second = titanic(sdk, "day3", 30, seed=5, first_id=201)
        assert run_cli("run", "titanic", "--source", second, "--mode", "append").returncode == 0
        result = paused.resume()
    finally:
        paused.kill()
    assert_one_line_error(result, (3,), "merge conflict")
    assert main_rows(sdk) == 130
    assert [b.name for b in lake(sdk).get_branches()] == [MAIN]


@pytest.mark.subprocess
def test_a_branch_written_to_after_its_audit_is_not_published(bauplan_standin, prefect_api) -> None:
    from reliability_helpers import PausedRun, assert_one_line_error, gate_env

    sdk = bauplan_standin
    env = subprocess_env(sdk.root, base=gate_env(prefect_api))
    branch = f"{sdk.username}.wap_titanic_0badc0de"
    clean = titanic(sdk, "clean")
    paused = PausedRun("publish", ["run", "titanic", "--source", clean, "--branch", branch], env)
    try:
        bad = titanic(sdk, "bad", seed=2, defect="null_survived")
        lake(sdk).import_data("titanic", bad, branch=branch)  # someone writes unaudited rows to the branch
        result = paused.resume()
    finally:
        paused.kill()
    assert_one_line_error(result, (3,), f"branch {branch} moved after the audit")
    assert not lake(sdk).has_table("titanic", MAIN)


def test_revert_through_the_sdk_restores_the_state_before_the_last_publish(bauplan_standin) -> None:
    sdk = bauplan_standin
    assert run_cli("run", "titanic", "--source", titanic(sdk, "v1", 120)).returncode == 0
    first = lake(sdk).get_branch(MAIN).hash
    assert run_cli("run", "titanic", "--source", titanic(sdk, "v2", 150, seed=7)).returncode == 0
    result = run_cli("revert", "titanic", "--reason", "vendor sent the wrong file", "--backend", "bauplan")
    assert result.returncode == 0, result.stdout + result.stderr
    assert main_rows(sdk) == 120
    [revert] = sdk.called("revert_table")
    assert (revert["source_ref"], revert["into_branch"].startswith(f"{sdk.username}.wap_revert_titanic_")) == (
        f"{MAIN}@{first}",
        True,
    )
    head = next(iter(lake(sdk).get_commits(MAIN, limit=1)))
    assert head.properties["wap.revert.reason"] == "vendor sent the wrong file"
    assert [b.name for b in lake(sdk).get_branches()] == [MAIN]


def test_run_all_publishes_every_dataset_through_the_sdk(bauplan_standin, tmp_path: Path, monkeypatch) -> None:
    """`wap run --all` on Bauplan: each dataset's own branch and merge; the merge reply of each names its own
    commit (never main read back after another run's merge)."""
    import yaml

    sdk = bauplan_standin
    gx = Path(__import__("os").environ["WAP_GX_DIR"])
    declared = {
        "datasets": {
            "titanic": {"source": titanic(sdk, "a", 100), "table": "titanic", "checkpoint": "titanic"},
            "titanic_copy": {"source": titanic(sdk, "b", 80, seed=9), "table": "titanic_copy", "checkpoint": "titanic"},
        }
    }
    path = tmp_path / "datasets.yml"
    path.write_text(yaml.safe_dump(declared))
    monkeypatch.setenv("WAP_DATASETS", str(path))
    assert gx.exists()
    result = run_cli("run", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (main_rows(sdk), main_rows(sdk, "bauplan.titanic_copy")) == (100, 80)
    publishes = [c for c in lake(sdk).get_commits(MAIN) if c.properties.get("wap.dataset")]
    assert sorted(c.properties["wap.dataset"] for c in publishes) == ["titanic", "titanic_copy"]
    for commit in publishes:  # each run reported the commit its own merge made
        assert commit.hash[:12] in result.stdout


def shop_batch(sdk, tag: str, *, orders: int, first_id: int, seed: int, orphans: int = 0) -> list[str]:
    """The shop group's three members as s3:// objects on the stand-in; `--source` arguments for them."""
    from flows.demo.shop import generate_customers, generate_orders, orphan_items

    order_table, items = generate_orders(orders, customers=30, first_id=first_id, seed=seed)
    if orphans:
        items = orphan_items(items, orphans, missing_from=10_000)
    args = []
    for member, table in (("customers", generate_customers(30)), ("orders", order_table), ("order_items", items)):
        uri = f"s3://wap-test/shop/{tag}/{member}.parquet"
        put_s3_object(sdk, uri, table)
        args += ["--source", f"{member}={uri}"]
    return args


def test_a_group_with_appended_members_publishes_in_one_commit_through_the_sdk(bauplan_standin) -> None:
    """customers replace, orders and order_items append: each appended batch staged on the branch's one staging
    branch, audited, and every member merged in one commit; the staging branch is gone after the audits."""
    sdk = bauplan_standin
    first = run_cli("run", "--group", "shop", *shop_batch(sdk, "day1", orders=40, first_id=1, seed=1))
    assert first.returncode == 0, first.stdout + first.stderr
    before = lake(sdk).get_branch(MAIN).hash
    second = run_cli("run", "--group", "shop", *shop_batch(sdk, "day2", orders=25, first_id=41, seed=2))
    assert second.returncode == 0, second.stdout + second.stderr
    assert main_rows(sdk, "shop.orders") == 65
    head = next(iter(lake(sdk).get_commits(MAIN, limit=1)))
    assert head.parent_hashes[0] == before  # main as it was, then the audited commit
    assert head.properties["wap.group"] == "shop"
    assert head.properties["member.orders.wap.added_rows"] == "25"
    assert head.properties["member.orders.wap.mode"] == "append"
    assert len(sdk.called("merge_branch")) == 2  # one per group run, every member at once
    # One staging branch per run, shared by both appended members, made once and deleted after the audits.
    staged = [c["branch"] for c in sdk.called("create_branch") if c["branch"].endswith("_batch")]
    assert len(set(staged)) == 2, staged
    assert [b.name for b in lake(sdk).get_branches()] == [MAIN]


def test_a_group_append_that_fails_its_audit_publishes_no_member_and_leaves_no_branch(bauplan_standin) -> None:
    sdk = bauplan_standin
    assert run_cli("run", "--group", "shop", *shop_batch(sdk, "day1", orders=40, first_id=1, seed=1)).returncode == 0
    head = lake(sdk).get_branch(MAIN).hash
    result = run_cli("run", "--group", "shop", *shop_batch(sdk, "bad", orders=20, first_id=41, seed=3, orphans=3))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert lake(sdk).get_branch(MAIN).hash == head
    assert main_rows(sdk, "shop.orders") == 40
    assert [b.name for b in lake(sdk).get_branches()] == [MAIN]  # gate branch and staging branch both deleted
