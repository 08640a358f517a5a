"""Bauplan's WAP options on both backends: `on_success: merge | inspect`, `on_failure: delete | inspect`, and
`wap publish BRANCH` for a branch a run kept for inspection; Bauplan's S3-only sources refused before any branch.

Real Prefect test server, real embedded lakehouse, the shipped GX project (a session copy); the CLI in-process.
The Bauplan runs go through `BauplanClient` over the SDK stand-in (tests/bauplan_standin.py).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import yaml
from bauplan_standin import bauplan_standin, put_s3_object  # noqa: F401  (a fixture)
from gate_fixtures import latest_artifact, run_cli

from flows.demo.data import corrupt, generate_titanic, write_csv
from flows.demo.shop import generate_customers, generate_orders, write_shop
from flows.lakehouse import MAIN, connect

pytestmark = pytest.mark.usefixtures("prefect_api")

KEPT = re.compile(
    r"audited (?P<what>.+?): passed; kept branch (?P<branch>\S+) at commit (?P<commit>[0-9a-f]+) for inspection,"
    r" not published: publish it with `wap publish (?P=branch)`"
)
SHOP = ("customers", "orders", "order_items")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("inspect-sources")
    clean = generate_titanic(891, seed=3)
    pq.write_table(corrupt(clean, "bad_pclass"), folder / "bad.parquet")
    more = generate_titanic(50, seed=4, first_id=2000)
    return {
        "clean": str(write_csv(clean, folder / "clean.csv")),
        "other": str(write_csv(generate_titanic(700, seed=5), folder / "other.csv")),
        "more": str(write_csv(more, folder / "more.csv")),
        "bad": str(folder / "bad.parquet"),
    }


def wap(*args: str, lake: Path, env: dict[str, str] | None = None):
    return run_cli(*args, "--lakehouse", str(lake), env=env)


def kept(result) -> dict[str, str]:
    assert result.returncode == 0, result.stdout + result.stderr
    found = KEPT.search(result.stdout)
    assert found, result.stdout
    return found.groupdict()


def last_line(result) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    return result.stderr.strip().splitlines()[-1]


def declarations(tmp_path: Path, *, datasets: dict | None = None, groups: dict | None = None) -> dict[str, str]:
    """The shipped gx/datasets.yml with some entries changed (merged into the declared ones); the env naming it."""
    import os

    shipped = yaml.safe_load((Path(os.environ["WAP_GX_DIR"]) / "datasets.yml").read_text())
    for name, changes in (datasets or {}).items():
        shipped["datasets"][name] = {**shipped["datasets"].get(name, {}), **changes}
    for name, changes in (groups or {}).items():
        shipped["groups"][name] = {**shipped["groups"].get(name, {}), **changes}
    path = tmp_path / "datasets.yml"
    path.write_text(yaml.safe_dump(shipped, sort_keys=False))
    return {"WAP_DATASETS": str(path)}


def pending_record(branch: str) -> dict:
    from flows.gate.inspection import pending_key

    artifact = latest_artifact(pending_key(branch))
    assert artifact is not None and artifact["type"] == "table"
    return artifact


def recorded_properties(branch: str) -> dict[str, str]:
    rows = json.loads(pending_record(branch)["data"])
    return {r["key"]: r["value"] for r in rows if r["what"] == "commit property"}


def shop_files(folder: Path) -> list[str]:
    orders, items = generate_orders(40, customers=30)
    files = write_shop({"customers": generate_customers(30), "orders": orders, "order_items": items}, folder)
    return [arg for m in SHOP for arg in ("--source", f"{m}={files[m]}")]


# ------------------------------------------------------------------------------ on_success: inspect


def test_on_success_inspect_keeps_the_audited_branch_and_leaves_main_unchanged(sources, tmp_path):
    lake = tmp_path / "lake"
    result = wap("run", "titanic", "--source", sources["clean"], "--on-success", "inspect", lake=lake)
    found = kept(result)
    assert found["what"] == "titanic"
    client = connect("local", lake)
    assert not client.has_table("titanic", MAIN)  # nothing merged
    assert not any(c.properties.get("wap.branch") for c in client.get_commits(MAIN))
    assert client.get_branch(found["branch"]).hash == found["commit"]  # the branch waits at the audited commit
    assert client.get_table("titanic", found["branch"]).records == 891

    report = latest_artifact("titanic-validation")
    assert "PASSED — kept for inspection" in report["data"] and f"wap publish {found['branch']}" in report["data"]
    assert found["commit"] in report["data"]
    assert "kept on branch" in report["description"]
    # What publish will record, readable in the UI: the audit's evidence, the commit, the message.
    record = pending_record(found["branch"])
    assert "what `wap publish" in record["description"]
    facts = {r["key"]: r["value"] for r in json.loads(record["data"]) if r["what"] == "pending publish"}
    assert facts["state"] == "pending" and facts["audited_commit"] == found["commit"] and facts["name"] == "titanic"
    assert facts["commit_message"].startswith("wap: publish bauplan.titanic")
    properties = recorded_properties(found["branch"])
    assert properties["gx.success"] == "true" and properties["wap.audited_commit"] == found["commit"]
    assert properties["wap.branch"] == found["branch"] and properties["wap.rows"] == "891"

    names: set[str] = set()
    for _ in range(30):  # events reach the server asynchronously
        response = httpx.post(
            _events_url(),
            json={"filter": {"event": {"prefix": ["wap.audit."]}, "any_resource": {"id": ["wap.dataset.titanic"]}}},
            timeout=30,
        )
        response.raise_for_status()
        names = {e["event"] for e in response.json()["events"] if e["payload"].get("branch") == found["branch"]}
        if {"wap.audit.passed", "wap.audit.inspect"} <= names:
            break
        time.sleep(1)
    assert {"wap.audit.passed", "wap.audit.inspect"} <= names


def _events_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return f"{PREFECT_API_URL.value()}/events/filter"


def test_wap_publish_merges_exactly_the_audited_commit_with_the_recorded_evidence(sources, tmp_path):
    lake = tmp_path / "lake"
    found = kept(wap("run", "titanic", "--source", sources["clean"], "--on-success", "inspect", lake=lake))
    recorded = recorded_properties(found["branch"])

    published = wap("publish", found["branch"], lake=lake, env={"WAP_USER": "reviewer"})
    assert published.returncode == 0, published.stdout + published.stderr
    client = connect("local", lake)
    head = client.get_commits(MAIN, limit=1)[0]
    assert f"at commit {head.hash}" in published.stdout and found["branch"] in published.stdout
    assert head.properties["wap.audited_commit"] == found["commit"]
    assert found["commit"] in [head.hash, *head.parent_hashes]  # exactly the audited commit was merged
    assert {k: head.properties[k] for k in recorded} == recorded  # the evidence the audit recorded, unchanged
    assert head.properties["wap.inspected"] == "true" and head.properties["wap.published_by"] == "reviewer"
    assert head.message.startswith("wap: publish bauplan.titanic")
    assert client.get_table("titanic", MAIN).records == 891
    assert not client.has_branch(found["branch"])
    facts = {r["key"]: r["value"] for r in json.loads(pending_record(found["branch"])["data"])}
    assert facts["state"] == "published" and facts["published_commit"] == head.hash

    again = wap("publish", found["branch"], lake=lake)  # consumed: a clean refusal, nothing merged
    assert again.returncode == 2, again.stdout + again.stderr
    line = last_line(again)
    assert f"no pending publish for branch {found['branch']}" in line and head.hash in line
    assert client.get_branch(MAIN).hash == head.hash


def test_a_branch_written_to_after_the_audit_is_not_published(sources, tmp_path):
    lake = tmp_path / "lake"
    found = kept(wap("run", "titanic", "--source", sources["clean"], "--on-success", "inspect", lake=lake))
    client = connect("local", lake)
    before = client.get_branch(MAIN).hash
    client.import_data("titanic", sources["more"], branch=found["branch"])  # unaudited rows on the kept branch

    result = wap("publish", found["branch"], lake=lake)
    assert result.returncode == 3, result.stdout + result.stderr
    line = last_line(result)
    assert line.startswith("not published:") and "moved after the audit" in line and found["branch"] in line
    assert client.get_branch(MAIN).hash == before and not client.has_table("titanic", MAIN)


def test_a_deleted_branch_is_not_published(sources, tmp_path):
    lake = tmp_path / "lake"
    found = kept(wap("run", "titanic", "--source", sources["clean"], "--on-success", "inspect", lake=lake))
    connect("local", lake).delete_branch(found["branch"])
    result = wap("publish", found["branch"], lake=lake)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "was deleted" in last_line(result)
    assert not connect("local", lake).has_table("titanic", MAIN)


def test_main_changed_since_the_audit_is_a_conflict_and_publishes_nothing(sources, tmp_path):
    lake = tmp_path / "lake"
    found = kept(wap("run", "titanic", "--source", sources["clean"], "--on-success", "inspect", lake=lake))
    other = wap("run", "titanic", "--source", sources["other"], lake=lake)  # publishes another table meanwhile
    assert other.returncode == 0, other.stdout + other.stderr
    client = connect("local", lake)
    before = client.get_branch(MAIN).hash

    result = wap("publish", found["branch"], lake=lake)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "main changed bauplan.titanic since the audit: run the gate again" in last_line(result)
    assert client.get_branch(MAIN).hash == before and client.get_table("titanic", MAIN).records == 700


def test_publish_without_a_pending_publish_names_the_branch_and_the_pending_ones(sources, tmp_path):
    lake = tmp_path / "lake"
    found = kept(wap("run", "titanic", "--source", sources["clean"], "--on-success", "inspect", lake=lake))
    result = wap("publish", "tester.wap_titanic_never", lake=lake)
    assert result.returncode == 2, result.stdout + result.stderr
    line = last_line(result)
    assert "no pending publish for branch tester.wap_titanic_never" in line and found["branch"] in line


def test_the_pending_list_is_newest_first_and_bounded(sources, tmp_path):
    from flows.gate.inspection import list_pending

    lake = tmp_path / "lake"
    older = kept(wap("run", "titanic", "--source", sources["clean"], "--on-success", "inspect", lake=lake))
    newer = kept(wap("run", "titanic", "--source", sources["other"], "--on-success", "inspect", lake=lake))
    listed = list_pending()
    assert listed.index(newer["branch"]) < listed.index(older["branch"]), listed
    assert list_pending(show=1) == [newer["branch"]]
    assert len(list_pending(show=2)) == 2


def test_a_pending_publish_not_recorded_by_a_gate_run_is_refused(sources, tmp_path):
    """Anyone who can write artifacts could write a record: only a completed gate run's is taken."""
    from flows.gate.inspection import PendingPublish, lakehouse_location, record_pending
    from flows.gate.outcome import Lakehouse

    lake = tmp_path / "lake"
    client = connect("local", lake)
    branch = "tester.wap_titanic_forged"
    client.create_branch(branch, from_ref=MAIN)
    client.create_table("titanic", sources["bad"], branch=branch)
    client.import_data("titanic", sources["bad"], branch=branch)
    commit = client.get_branch(branch).hash
    forged = {"wap.branch": branch, "wap.audited_commit": commit, "gx.success": "true"}
    record_pending(
        PendingPublish(
            "dataset", "titanic", branch, commit, "wap: publish", forged, ("bauplan.titanic",), "local",
            lakehouse_location(Lakehouse("local", str(lake))),
        )
    )  # fmt: skip
    result = wap("publish", branch, lake=lake)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot be trusted" in last_line(result) and "not recorded by a flow run" in last_line(result)
    assert not client.has_table("titanic", MAIN)


def test_publish_on_another_lakehouse_than_the_audit_is_refused(sources, tmp_path):
    found = kept(wap("run", "titanic", "--source", sources["clean"], "--on-success", "inspect", lake=tmp_path / "one"))
    result = wap("publish", found["branch"], lake=tmp_path / "two")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"--lakehouse {tmp_path / 'one'}" in last_line(result)


def test_a_group_with_on_success_inspect_is_kept_then_published_in_one_commit(tmp_path):
    lake = tmp_path / "lake"
    env = declarations(tmp_path, groups={"shop": {"on_success": "inspect"}})
    found = kept(wap("run", "--group", "shop", *shop_files(tmp_path / "set"), lake=lake, env=env))
    assert found["what"] == "group shop"
    client = connect("local", lake)
    assert not any(client.has_table(m, MAIN, namespace="shop") for m in SHOP)
    assert client.get_branch(found["branch"]).hash == found["commit"]
    assert "PASSED — kept for inspection" in latest_artifact("shop-validation")["data"]
    assert "PASSED — kept for inspection" in latest_artifact("orders-validation")["data"]
    recorded = recorded_properties(found["branch"])
    assert recorded["wap.group"] == "shop" and recorded["member.orders.gx.success"] == "true"

    published = wap("publish", found["branch"], lake=lake, env=env)
    assert published.returncode == 0, published.stdout + published.stderr
    assert "published group shop" in published.stdout
    head = client.get_commits(MAIN, limit=1)[0]
    assert head.properties["wap.audited_commit"] == found["commit"] and head.properties["wap.inspected"] == "true"
    assert {k: head.properties[k] for k in recorded} == recorded
    assert all(client.has_table(m, MAIN, namespace="shop") for m in SHOP)
    assert not client.has_branch(found["branch"])


def test_the_run_flag_overrides_the_declaration(sources, tmp_path):
    lake = tmp_path / "lake"
    env = declarations(tmp_path, datasets={"titanic": {"on_success": "inspect", "on_failure": "inspect"}})
    kept(wap("run", "titanic", "--source", sources["clean"], lake=lake, env=env))  # as declared: kept
    merged = wap("run", "titanic", "--source", sources["clean"], "--on-success", "merge", lake=lake, env=env)
    assert merged.returncode == 0 and "published titanic: 891 rows" in merged.stdout, merged.stdout + merged.stderr
    assert connect("local", lake).get_table("titanic", MAIN).records == 891

    branch = "tester.wap_titanic_deleted"
    deleted = wap(
        "run", "titanic", "--source", sources["bad"], "--branch", branch, "--on-failure", "delete", lake=lake, env=env
    )
    assert deleted.returncode == 1, deleted.stdout + deleted.stderr
    assert not connect("local", lake).has_branch(branch)  # the flag beat the declared on_failure: inspect
    # The flow parameters are what a deployment sets: the same override without the CLI.
    from flows.gate import run_gate

    outcome = run_gate("titanic", sources["clean"], backend="local", lakehouse=str(lake), on_success="merge")
    assert outcome.published


def test_on_failure_inspect_keeps_the_failed_branch_and_says_how_to_look_at_it(sources, tmp_path):
    lake = tmp_path / "lake"
    branch = "tester.wap_titanic_failed"
    result = wap("run", "titanic", "--source", sources["bad"], "--branch", branch, "--on-failure", "inspect", lake=lake)
    assert result.returncode == 1, result.stdout + result.stderr
    line = last_line(result)
    assert line.startswith("blocked: titanic:") and f"kept branch {branch} for inspection" in line
    assert f'wap query "SELECT * FROM bauplan.titanic LIMIT 20" --ref {branch}' in line
    client = connect("local", lake)
    assert client.has_branch(branch) and client.get_table("titanic", branch).records == 891
    assert not client.has_table("titanic", MAIN)
    report = latest_artifact("titanic-validation")["data"]
    assert "BLOCKED by the audit" in report and f"`{branch}` is kept for inspection" in report
    # --keep-failed-branch is the same thing; with --on-failure delete it contradicts itself (exit 2).
    both = wap("run", "titanic", "--keep-failed-branch", "--on-failure", "delete", lake=lake)
    assert both.returncode == 2 and "--keep-failed-branch is --on-failure inspect" in last_line(both)


def test_a_group_with_on_failure_inspect_keeps_its_branch(tmp_path):
    lake = tmp_path / "lake"
    orders, items = generate_orders(40, customers=30)
    # A negative total breaks a critical rule (an unknown status only warns).
    bad = orders.set_column(orders.schema.get_field_index("total"), "total", [[-5.0] * orders.num_rows])
    files = write_shop({"customers": generate_customers(30), "orders": bad, "order_items": items}, tmp_path / "bad")
    branch = "tester.wap_shop_failed"
    args = [arg for m in SHOP for arg in ("--source", f"{m}={files[m]}")]
    result = wap("run", "--group", "shop", *args, "--branch", branch, "--on-failure", "inspect", lake=lake)
    assert result.returncode == 1, result.stdout + result.stderr
    line = last_line(result)
    assert f"kept branch {branch} for inspection" in line and "FROM shop.orders" in line
    assert connect("local", lake).has_branch(branch)
    report = latest_artifact("shop-validation")["data"]
    assert "is kept for inspection" in report
    # The failed member's rule, listed by its key on the kept branch (the group's report and the run's log).
    said = result.stdout + result.stderr
    assert "failing rows of expect_column_values_to_be_between (total): wap query" in said
    assert "Its failing rows, rule by rule" in report and "SELECT id, total FROM shop.orders WHERE" in report


@pytest.mark.parametrize(
    ("datasets", "groups", "args", "needles"),
    [
        (
            {"titanic": {"on_success": "publish"}},
            None,
            ["titanic"],
            ["dataset 'titanic'", "on_success", "merge, inspect"],
        ),
        (
            {"titanic": {"on_failure": "keep"}},
            None,
            ["titanic"],
            ["dataset 'titanic'", "on_failure", "delete, inspect"],
        ),
        (None, {"shop": {"on_success": True}}, ["--group", "shop"], ["group 'shop'", "on_success", "merge, inspect"]),
        (None, None, ["titanic", "--on-success", "yes"], ["--on-success", "'yes'", "merge, inspect"]),
        (None, None, ["titanic", "--on-failure", "keep"], ["--on-failure", "'keep'", "delete, inspect"]),
    ],
)
def test_bad_values_are_refused_before_anything_runs(tmp_path, datasets, groups, args, needles):
    lake = tmp_path / "lake"
    result = wap("run", *args, lake=lake, env=declarations(tmp_path, datasets=datasets, groups=groups))
    assert result.returncode == 2, result.stdout + result.stderr
    line = last_line(result)
    assert all(n in line for n in needles), line
    assert not lake.exists()  # no lakehouse, no branch


def test_suite_check_reports_a_bad_value(tmp_path):
    env = declarations(tmp_path, datasets={"titanic": {"on_success": "later"}})
    result = run_cli("suite", "check", env=env)
    assert result.returncode != 0
    assert "on_success 'later'" in result.stdout + result.stderr and "merge, inspect" in result.stdout + result.stderr


def test_declared_options_round_trip_and_defaults_are_not_written(tmp_path):
    from flows.datasets import Dataset, load_datasets, save_dataset

    path = tmp_path / "datasets.yml"
    save_dataset(Dataset("plain", "x.csv", "plain"), path)
    save_dataset(Dataset("kept", "x.csv", "kept", on_success="inspect", on_failure="inspect"), path)
    raw = yaml.safe_load(path.read_text())["datasets"]
    assert "on_success" not in raw["plain"] and raw["kept"]["on_success"] == "inspect"
    declared = load_datasets(path)
    assert (declared["kept"].on_success, declared["kept"].on_failure) == ("inspect", "inspect")
    assert (declared["plain"].on_success, declared["plain"].on_failure) == ("merge", "delete")


# ------------------------------------------------------------------------------------ Bauplan: S3 only


def test_an_https_source_on_bauplan_is_refused_before_any_branch(bauplan_standin) -> None:  # noqa: F811
    sdk = bauplan_standin
    result = run_cli("run", "titanic", "--backend", "bauplan")  # the declared https:// source
    assert result.returncode == 2, result.stdout + result.stderr
    line = last_line(result)
    assert line.startswith("error: dataset titanic: source https://") and "upload it to S3" in line
    assert "--source s3://bucket/key" in line
    assert sdk.called("create_branch") == [] and [b.name for b in sdk.local.get_branches()] == [MAIN]


def test_the_flows_refuse_a_non_s3_source_on_bauplan_themselves(bauplan_standin, tmp_path) -> None:  # noqa: F811
    """Deployments do not go through the CLI: the flows check too, for every member of a group."""
    from flows.datasets import DatasetError
    from flows.gate import run_gate, run_group

    sdk = bauplan_standin
    with pytest.raises(DatasetError, match="dataset titanic: source https://.*upload it to S3"):
        run_gate("titanic", backend="bauplan")
    with pytest.raises(DatasetError, match="dataset titanic: source /tmp/x.csv"):
        run_gate("titanic", "/tmp/x.csv", backend="bauplan")
    s3 = {m: f"s3://wap-test/{m}.parquet" for m in SHOP}
    with pytest.raises(DatasetError, match="group shop: dataset orders: source file:///o.parquet .*--source orders="):
        run_group("shop", {**s3, "orders": "file:///o.parquet"}, backend="bauplan")
    result = run_cli("run", "--group", "shop", "--backend", "bauplan")
    assert result.returncode == 2 and "group shop: dataset customers: source shop/customers.parquet" in last_line(
        result
    )
    assert sdk.called("create_branch") == [] and [b.name for b in sdk.local.get_branches()] == [MAIN]


def test_inspect_then_publish_through_the_bauplan_backend(bauplan_standin) -> None:  # noqa: F811
    sdk = bauplan_standin
    uri = "s3://wap-test/titanic.parquet"
    put_s3_object(sdk, uri, generate_titanic(300, seed=1))
    found = kept(run_cli("run", "titanic", "--source", uri, "--backend", "bauplan", "--on-success", "inspect"))
    assert found["branch"].startswith(f"{sdk.username}.wap_titanic_")
    assert sdk.called("merge_branch") == []
    lake = connect("bauplan")
    assert not lake.has_table("titanic", MAIN) and lake.get_branch(found["branch"]).hash == found["commit"]

    published = run_cli("publish", found["branch"], "--backend", "bauplan")
    assert published.returncode == 0, published.stdout + published.stderr
    [merge] = sdk.called("merge_branch")
    assert merge["source_ref"] == f"{found['branch']}@{found['commit']}" and merge["into_branch"] == MAIN
    assert merge["commit_properties"]["wap.inspected"] == "true"
    assert merge["commit_properties"]["wap.published_by"] == sdk.username
    assert lake.query("SELECT count(*) AS n FROM bauplan.titanic", ref=MAIN).column("n")[0].as_py() == 300
    assert not lake.has_branch(found["branch"])
    again = run_cli("publish", found["branch"], "--backend", "bauplan")
    assert again.returncode == 2 and "no pending publish" in last_line(again)
