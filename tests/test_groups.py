"""Dataset groups: members written to one branch, each audited by its own checkpoint and all of them by the
group's cross-table rules, published in one merge commit or not at all.

Real Prefect test server, real embedded lakehouse, the shipped GX project (a session copy); the CLI in-process.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from gate_fixtures import latest_artifact, run_cli

from flows.demo.shop import generate_customers, generate_orders, orphan_items, write_shop
from flows.gate import GroupAuditFailedError, run_group
from flows.lakehouse import MAIN, connect

pytestmark = pytest.mark.usefixtures("prefect_api")

MEMBERS = ("customers", "orders", "order_items")


def shop_set(folder: Path, *, orders: int = 40, first_order: int = 1, seed: int = 0, **changes) -> dict[str, str]:
    """A consistent customers/orders/order_items set (``changes``: a member's table replaced) as Parquet files."""
    order_table, items = generate_orders(orders, customers=30, first_id=first_order, seed=seed)
    tables = {"customers": generate_customers(30), "orders": order_table, "order_items": items}
    tables.update(changes)
    return write_shop(tables, folder)


def tables_on_main(lake: Path) -> dict[str, tuple[str, int] | None]:
    """Each member table's metadata location and rows on main (None: no such table)."""
    client = connect("local", lake)
    state: dict[str, tuple[str, int] | None] = {}
    for name in MEMBERS:
        if client.has_table(name, MAIN, namespace="shop"):
            info = client.get_table(name, MAIN, namespace="shop")
            state[name] = (info.metadata_location, info.records)
        else:
            state[name] = None
    return state


def _replace_column(table: pa.Table, column: str, values: list) -> pa.Table:
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pa.array(values, table.schema.field(column).type))


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """A lakehouse whose main holds one published shop group (40 orders)."""
    lake = tmp_path / "lake"
    run_group("shop", sources=shop_set(tmp_path / "first"), lakehouse=str(lake), backend="local")
    return lake


def test_a_group_publishes_every_member_in_one_merge_commit(tmp_path, prefect_api):
    lake = tmp_path / "lake"
    sources = shop_set(tmp_path / "set")
    client = connect("local", lake)
    before = client.get_branch(MAIN).hash
    outcome = run_group("shop", sources=sources, lakehouse=str(lake), backend="local")

    head = client.get_commits(MAIN, limit=1)[0]
    assert head.hash == outcome.published_commit == client.get_branch(MAIN).hash
    # One merge commit on main: its first parent is main as it was, its second the audited branch commit.
    assert head.parent_hashes == [before, outcome.members["orders"].audited_commit]
    first_parents = [c.hash for c in client.get_commits(MAIN) if c.properties.get("wap.branch") is None]
    assert before in first_parents
    props = head.properties
    assert props["wap.group"] == "shop" and props["wap.datasets"] == "customers,orders,order_items"
    assert props["wap.tables"] == "shop.customers,shop.orders,shop.order_items"
    assert props["wap.audited_commit"] == head.parent_hashes[1]
    for member in MEMBERS:
        assert props[f"member.{member}.gx.success"] == "true"
        assert props[f"member.{member}.wap.table"] == f"shop.{member}"
    assert props["gx.cross_table.suite"] == "shop" and props["gx.cross_table.evaluated_expectations"] == "3"
    # Every member as written, each of its rows once.
    for member in MEMBERS:
        expected = pa.parquet.read_table(sources[member])
        assert client.get_table(member, MAIN, namespace="shop").records == expected.num_rows
        got = client.scan(member, ref=MAIN, namespace="shop")
        assert sorted(got.column("id").to_pylist()) == sorted(expected.column("id").to_pylist())
    assert [b.name for b in client.get_branches()] == [MAIN]
    assert outcome.cross is not None and outcome.cross.success

    # One flow run for the group, with every member's tasks in it; artifacts per member and for the group.
    flow_runs = httpx.post(
        f"{prefect_api}/flow_runs/filter", json={"flow_runs": {"name": {"like_": "wap-group-shop-"}}}, timeout=30
    ).json()
    run_id = next(r["id"] for r in flow_runs if r["state_type"] == "COMPLETED")
    task_runs = httpx.post(
        f"{prefect_api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}, "limit": 50}, timeout=30
    ).json()
    names = {t["name"].split(" to ")[0].split(" on ")[0].split(" from ")[0] for t in task_runs}
    assert {f"write {m}" for m in MEMBERS} | {f"audit {m}" for m in MEMBERS} <= names
    assert {"audit shop across tables", "publish shop"} <= names
    report = latest_artifact("shop-validation")
    assert report is not None and "# group shop: PUBLISHED" in report["data"]
    assert outcome.published_commit in report["data"]
    for member in MEMBERS:
        member_report = latest_artifact(f"{member.replace('_', '-')}-validation")
        assert member_report is not None and "PUBLISHED" in member_report["data"]
        assert "**Group**: shop" in member_report["data"]


@pytest.mark.parametrize(
    ("member", "column", "value", "rule"),
    [
        # A critical rule of each member (an unknown country or order state only warns: tests/test_severity.py).
        ("customers", "email", None, "expect_column_values_to_not_be_null"),
        ("orders", "total", -5.0, "expect_column_values_to_be_between"),
        ("order_items", "quantity", 0, "expect_column_values_to_be_between"),
    ],
)
def test_any_member_failing_its_own_audit_blocks_the_whole_group(published, tmp_path, member, column, value, rule):
    before = tables_on_main(published)
    head = connect("local", published).get_branch(MAIN).hash
    sources = shop_set(tmp_path / "next", first_order=41, seed=1)
    table = pa.parquet.read_table(sources[member])
    values = table.column(column).to_pylist()
    values[:3] = [value] * 3
    pa.parquet.write_table(_replace_column(table, column, values), sources[member])

    with pytest.raises(GroupAuditFailedError) as caught:
        run_group("shop", sources=sources, lakehouse=str(published), backend="local")

    assert set(caught.value.results) == {member}  # which member, and only that one
    assert f"shop: {member}: " in str(caught.value) and rule in str(caught.value) and column in str(caught.value)
    assert tables_on_main(published) == before  # no member table changed on main
    client = connect("local", published)
    assert client.get_branch(MAIN).hash == head
    assert [b.name for b in client.get_branches()] == [MAIN]
    report = latest_artifact("shop-validation")["data"]
    assert "BLOCKED" in report and f"- **{member}**:" in report
    # The members that passed say they were blocked with their group, not that publishing failed.
    other = next(m for m in MEMBERS if m != member)
    other_report = latest_artifact(f"{other.replace('_', '-')}-validation")["data"]
    assert "BLOCKED with group shop" in other_report


def test_items_whose_orders_exist_nowhere_are_blocked_with_the_offending_order_ids(published, tmp_path):
    before = tables_on_main(published)
    orders, items = generate_orders(20, customers=30, first_id=41, seed=2)
    sources = shop_set(
        tmp_path / "next", orders=20, first_order=41, order_items=orphan_items(items, 3, missing_from=7001)
    )
    sources["orders"] = write_shop({"orders": orders}, tmp_path / "orders")["orders"]

    with pytest.raises(GroupAuditFailedError) as caught:
        run_group("shop", sources=sources, lakehouse=str(published), backend="local")

    cross = caught.value.results["cross-table rules"]
    assert set(caught.value.results) == {"cross-table rules"}  # every member passed its own suites
    failed = [e for e in cross.expectations if not e.success]
    assert [e.description for e in failed] == ["Every order item's order exists in orders"]
    assert failed[0].unexpected_count == 3
    assert [row["order_id"] for row in failed[0].partial_unexpected_list] == [7001, 7002, 7003]
    assert "order_id=7001" in str(caught.value)
    assert tables_on_main(published) == before
    report = latest_artifact("shop-validation")["data"]
    assert "Blocked by the cross-table rules" in report and "7001" in report and "7003" in report
    assert cross.data_docs_url and Path(cross.data_docs_url.removeprefix("file://")).is_file()
    # The cross-table rules' page as the member pages are: a link wap docs serve opens, and the file.
    from flows.reports.docs_site import docs_page

    page = docs_page(cross.data_docs_url)
    assert page is not None and page.url.startswith("http://127.0.0.1:8900/")
    assert f"[{page.url}]({page.url})" in report


def test_items_referencing_orders_already_on_main_pass_as_the_group_would_be_published(published, tmp_path):
    """Referential integrity is checked on the tables as they would be published: main's orders count."""
    orders, items = generate_orders(10, customers=30, first_id=41, seed=3)
    old_order_ids = [1, 2, 3] + items.column("order_id").to_pylist()[3:]  # three items of orders already on main
    sources = shop_set(tmp_path / "next", orders=10, first_order=41, seed=3)
    sources["order_items"] = write_shop(
        {"order_items": _replace_column(items, "order_id", old_order_ids)}, tmp_path / "i"
    )["order_items"]
    outcome = run_group("shop", sources=sources, lakehouse=str(published), backend="local")
    assert outcome.published
    assert connect("local", published).get_table("orders", MAIN, namespace="shop").records == 50


def test_fewer_items_than_orders_breaks_the_row_count_relation(tmp_path):
    orders, items = generate_orders(30, customers=30, seed=4)
    few = items.filter(pc.less_equal(items.column("order_id"), 5))  # items of 5 orders only
    sources = shop_set(tmp_path / "set", orders=30, seed=4, order_items=few)
    with pytest.raises(GroupAuditFailedError) as caught:
        run_group("shop", sources=sources, lakehouse=str(tmp_path / "lake"), backend="local")
    failed = {e.description for e in caught.value.results["cross-table rules"].failed}
    assert "There are at least as many order items as orders" in failed
    assert tables_on_main(tmp_path / "lake") == dict.fromkeys(MEMBERS)  # nothing on main, not even customers


def test_wap_run_group_prints_every_member_and_exit_codes(tmp_path):
    lake = tmp_path / "lake"
    sources = shop_set(tmp_path / "set")
    args = [f"--source={m}={p}" for m, p in sources.items()]
    done = run_cli("run", "--group", "shop", *args, "--lakehouse", str(lake))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published group shop: customers 30 rows; orders appended 40 rows (40 in the table)" in done.stdout

    items = pa.parquet.read_table(sources["order_items"])
    orphans = write_shop({"order_items": orphan_items(items, 2, missing_from=9001)}, tmp_path / "bad")["order_items"]
    blocked = run_cli("run", "--group", "shop", *args[:2], f"--source=order_items={orphans}", "--lakehouse", str(lake))
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    last = blocked.stderr.strip().splitlines()[-1]
    # The same orders again collide with main's (orders' table suite), and two items name missing orders:
    # one line names every member and rule that blocked.
    assert last.startswith("blocked: shop: orders: ") and "orders_table" in last
    assert "; cross-table rules: " in last and "order_id=9001" in last

    for bad, needle in (
        (["--group", "nope"], "unknown group 'nope'"),
        (["--group", "shop", "--mode", "append"], "--mode applies to one dataset"),
        (["--group", "shop", "--source", "nobody=x.csv"], "MEMBER one of customers, orders, order_items"),
        (["titanic", "--group", "shop"], "give one of DATASET, --group NAME or --all"),
    ):
        result = run_cli("run", *bad, "--lakehouse", str(lake))
        assert result.returncode == 2, result.stdout + result.stderr
        assert needle in result.stderr and "Traceback" not in result.stdout + result.stderr


def _declarations(tmp_path: Path, groups: dict, datasets: dict | None = None) -> Path:
    shipped = yaml.safe_load(Path(__import__("os").environ["WAP_GX_DIR"], "datasets.yml").read_text())
    path = tmp_path / "datasets.yml"
    path.write_text(yaml.safe_dump({"datasets": {**shipped["datasets"], **(datasets or {})}, "groups": groups}))
    return path


@pytest.mark.parametrize(
    ("groups", "datasets", "needle"),
    [
        ({"g": {"members": ["orders", "nobody"]}}, None, "member 'nobody' is not a declared dataset"),
        (
            {"a": {"members": ["orders"]}, "b": {"members": ["orders", "customers"]}},
            None,
            "dataset 'orders' is already a member of a",
        ),
        ({"a": {"members": ["b"]}, "b": {"members": ["a"]}}, None, "these form a cycle: a -> b -> a"),
        ({"titanic": {"members": ["orders"]}}, None, "has the name of a dataset"),
        (
            {"g": {"members": ["orders", "orders_copy"]}},
            {"orders_copy": {"source": "x.csv", "table": "orders", "namespace": "shop"}},
            "both write table shop.orders",
        ),
        ({"g": {"members": []}}, None, "needs 'members:'"),
        ({"g": {"members": ["orders"], "owner": "me"}}, None, "unknown keys: owner"),
    ],
)
def test_a_bad_group_declaration_is_refused_by_suite_check_and_at_run_start(tmp_path, groups, datasets, needle):
    path = _declarations(tmp_path, groups, datasets)
    env = {"WAP_DATASETS": str(path)}
    lake = tmp_path / "lake"
    group = next(iter(groups))
    started = run_cli("run", "--group", group, "--lakehouse", str(lake), env=env)
    assert started.returncode == 2, started.stdout + started.stderr
    assert needle in started.stderr and "Traceback" not in started.stdout + started.stderr
    assert not lake.exists()  # refused before anything was written, not even a lakehouse
    checked = run_cli("suite", "check", env=env)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert needle in checked.stdout + checked.stderr


def test_a_cross_table_rule_naming_a_table_outside_the_group_is_refused(tmp_path, shipped_gx):
    import json

    suite_path = shipped_gx / "expectations" / "shop.json"
    suite = json.loads(suite_path.read_text())
    suite["expectations"][0]["kwargs"]["unexpected_rows_query"] = (
        "SELECT i.* FROM {batch}.order_items AS i WHERE i.order_id NOT IN (SELECT id FROM bauplan.titanic)"
    )
    suite_path.write_text(json.dumps(suite))
    env = {"WAP_GX_DIR": str(shipped_gx)}
    checked = run_cli("suite", "check", "shop", env=env)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "names bauplan.titanic, outside the group" in checked.stdout + checked.stderr

    lake = tmp_path / "lake"
    args = [f"--source={m}={p}" for m, p in shop_set(tmp_path / "set").items()]
    started = run_cli("run", "--group", "shop", *args, "--lakehouse", str(lake), env=env)
    assert started.returncode == 2, started.stdout + started.stderr
    assert "outside the group" in started.stderr.strip().splitlines()[-1]
    assert not lake.exists() or [b.name for b in connect("local", lake).get_branches()] == [MAIN]


def test_the_shipped_group_passes_suite_check():
    checked = run_cli("suite", "check", "shop")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "suite shop: cross-table rules of group shop" in checked.stdout


def test_wap_run_all_runs_a_group_as_one_unit(tmp_path):
    from flows.demo.data import generate_titanic, write_csv

    sources = shop_set(tmp_path / "set")
    titanic = write_csv(generate_titanic(100, seed=5), tmp_path / "titanic.csv")
    datasets = {
        "titanic": {"source": str(titanic), "table": "titanic", "checkpoint": "titanic"},
        **{m: {"source": p, "table": m, "namespace": "shop", "checkpoint": m} for m, p in sources.items()},
    }
    datasets["orders"]["mode"] = datasets["order_items"]["mode"] = "append"
    path = tmp_path / "datasets.yml"
    path.write_text(yaml.safe_dump({"datasets": datasets, "groups": {"shop": {"members": list(MEMBERS)}}}))
    lake = tmp_path / "lake"
    done = run_cli("run", "--all", "--lakehouse", str(lake), env={"WAP_DATASETS": str(path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "shop (group)" in done.stdout and "titanic" in done.stdout
    client = connect("local", lake)
    log = client.get_commits(MAIN)
    assert sum(1 for c in log if c.properties.get("wap.group") == "shop") == 1
    assert sum(1 for c in log if c.properties.get("wap.dataset") == "titanic") == 1
    # No member was run on its own: only the group's commit touched them.
    assert not any(c.properties.get("wap.dataset") in MEMBERS for c in log)


def test_wap_serve_deploys_a_group_as_one_flow_and_its_members_only_with_it(tmp_path, monkeypatch):
    from flows.gate.deployments import build_deployments

    path = _declarations(tmp_path, {"shop": {"members": list(MEMBERS), "schedule": "0 6 * * *"}})
    monkeypatch.setenv("WAP_DATASETS", str(path))
    deployments = {d.name: d for d in build_deployments(backend="local", lakehouse=str(tmp_path / "lake"))}
    # A member alone would publish apart from its group; `publish` publishes a branch a run kept for inspection.
    assert set(deployments) == {"titanic", "shop", "publish"}
    assert deployments["publish"].flow_name == "wap-publish"
    shop = deployments["shop"]
    assert shop.flow_name == "wap-group" and shop.parameters["group"] == "shop"
    assert [s.schedule.cron for s in shop.schedules] == ["0 6 * * *"]
    assert deployments["titanic"].flow_name == "wap"


def test_a_real_group_publish_reverts_as_one_commit(published, tmp_path):
    """`wap revert --group` on what `wap run --group` really published: every member back, in one new commit."""
    first = tables_on_main(published)
    run_group("shop", sources=shop_set(tmp_path / "next", first_order=41, seed=5), lakehouse=str(published))
    client = connect("local", published)
    second = client.get_branch(MAIN).hash
    assert tables_on_main(published) != first

    reverted = run_cli("revert", "--group", "shop", "--reason", "a bad day", "--lakehouse", str(published))
    assert reverted.returncode == 0, reverted.stdout + reverted.stderr
    head = client.get_commits(MAIN, limit=1)[0]
    assert head.parent_hashes[0] == second  # one commit on top of the group's publish
    assert head.properties["wap.revert.group"] == "shop" and head.properties["wap.revert.reason"] == "a bad day"
    after = tables_on_main(published)
    assert {m: state[1] for m, state in after.items()} == {m: state[1] for m, state in first.items()}
    assert sorted(client.scan("orders", ref=MAIN, namespace="shop").column("id").to_pylist()) == list(range(1, 41))
    assert [b.name for b in client.get_branches()] == [MAIN]
