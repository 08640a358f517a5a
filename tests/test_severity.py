"""GX severity decides the gate's verdict: a failed critical rule (the default) blocks, a failed warning rule
publishes "with warnings", a failed info rule is report-only; each failed rule's notes reach the reports.

Real Prefect test server, real embedded lakehouse, real GX contexts: the shipped project (whose Embarked
completeness rule is a warning) and a copy of it with other severities.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gate_fixtures import REPO, latest_artifact, run_cli

from flows.demo.data import corrupt, generate_titanic, write_csv
from flows.lakehouse import MAIN, connect

pytestmark = pytest.mark.usefixtures("prefect_api")

EMBARKED_NOTE = "no consumer breaks on a missing port"  # from the shipped rule's meta.notes
PCLASS_NOTE = "Ticket class: 1st, 2nd or 3rd."  # from the shipped Pclass value-set rule's notes


def _with_nulls(table: pa.Table, column: str, every: int) -> pa.Table:
    values = [None if i % every == 0 else v for i, v in enumerate(table.column(column).to_pylist())]
    typed = pa.array(values, table.schema.field(column).type)
    return table.set_column(table.schema.get_field_index(column), column, typed)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("severity")
    clean = generate_titanic(891, seed=3)
    pq.write_table(_with_nulls(clean, "Embarked", 10), folder / "embarked_nulls.parquet")  # 10% nulls: > 1%
    pq.write_table(corrupt(clean, "bad_pclass"), folder / "bad_pclass.parquet")
    both = _with_nulls(corrupt(clean, "bad_pclass"), "Embarked", 10)
    pq.write_table(both, folder / "both.parquet")
    return {
        "clean": write_csv(clean, folder / "clean.csv"),
        "embarked_nulls": folder / "embarked_nulls.parquet",
        "bad_pclass": folder / "bad_pclass.parquet",
        "both": folder / "both.parquet",
    }


def _flow_run(flow_run_id: str) -> dict:
    response = httpx.get(f"{_api()}/flow_runs/{flow_run_id}", timeout=30)
    response.raise_for_status()
    return response.json()


def _api() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _published(result, lake: Path) -> tuple[object, str]:
    """A run that exited 0: main's head commit and the name of the flow run's final state."""
    assert result.returncode == 0, result.stdout + result.stderr
    head = connect("local", lake).get_commits(MAIN, limit=1)[0]
    return head, _flow_run(head.properties["prefect.flow_run_id"])["state"]["name"]


def _events(prefix: str, resource: str, commit: str) -> list[dict]:
    """The events of this prefix about ``resource`` (newest first), once one names ``commit`` (other tests' runs
    emit events about the same dataset)."""
    events: list[dict] = []
    for _ in range(30):  # events reach the server asynchronously
        response = httpx.post(
            f"{_api()}/events/filter",
            json={"filter": {"event": {"prefix": [prefix]}, "any_resource": {"id": [resource]}}, "order": "DESC"},
            timeout=30,
        )
        response.raise_for_status()
        events = response.json()["events"]
        if any(e["payload"].get("commit") == commit for e in events):
            break
        time.sleep(1)
    return events


def test_shipped_suite_says_which_rules_only_warn():
    """The shipped suites: Embarked's completeness, customers' countries and orders' states warn; the rest block."""
    severities = {}
    for name in ("titanic", "customers", "orders", "titanic_table", "shop"):
        for e in json.loads((REPO / "gx" / "expectations" / f"{name}.json").read_text())["expectations"]:
            severities[(name, e["type"], e["kwargs"].get("column"))] = e.get("severity", "critical")
    warned = {key for key, severity in severities.items() if severity != "critical"}
    assert warned == {
        ("titanic", "expect_column_values_to_not_be_null", "Embarked"),
        ("customers", "expect_column_values_to_be_in_set", "country"),
        ("orders", "expect_column_values_to_be_in_set", "status"),
    }
    assert set(severities.values()) == {"critical", "warning"}


def test_a_failed_warning_rule_publishes_with_warnings(files, tmp_path):
    lake = tmp_path / "lake"
    result = run_cli("run", "titanic", "--source", str(files["embarked_nulls"]), "--lakehouse", str(lake))
    assert result.returncode == 0, result.stdout + result.stderr
    line = [x for x in result.stdout.splitlines() if x.startswith("published titanic")][-1]
    assert (
        "with warnings: [warning] titanic on the batch: expect_column_values_to_not_be_null on column 'Embarked'"
        in line
    ), line
    assert EMBARKED_NOTE in line, line  # the rule's notes

    head = connect("local", lake).get_commits(MAIN, limit=1)[0]
    assert head.properties["gx.success"] == "true"
    assert head.properties["gx.warnings"] == "expect_column_values_to_not_be_null(Embarked)"
    assert head.properties["gx.infos"] == ""
    assert connect("local", lake).get_table("titanic", MAIN).records == 891
    logged = run_cli("log", "--json", "--lakehouse", str(lake))  # the JSON output carries the same record
    assert json.loads(logged.stdout)[0]["properties"]["gx.warnings"] == head.properties["gx.warnings"]

    run = _flow_run(head.properties["prefect.flow_run_id"])
    assert run["state"]["type"] == "COMPLETED"
    assert run["state"]["name"] == "Published with warnings"
    assert "1 warning rule(s) failed" in run["state"]["message"]

    report = latest_artifact("titanic-validation")
    assert report is not None and report["flow_run_id"] == run["id"]
    markdown = report["data"]
    assert markdown.startswith("# titanic: PUBLISHED with warnings")
    assert "## Warnings and info (not blocking)" in markdown and "## Failed expectations" not in markdown
    assert "Why the rule exists: Embarked is missing for only 2/891 passengers" in markdown
    assert "| **warning** |" in markdown
    assert "published with warnings" in report["description"]

    events = _events("wap.", "wap.dataset.titanic", head.hash)
    branch = head.properties["wap.branch"]
    warned = [e for e in events if e["event"] == "wap.audit.warned" and e["payload"]["branch"] == branch]
    assert warned and warned[0]["payload"]["warnings"] == ["expect_column_values_to_not_be_null(Embarked)"]
    published = [e for e in events if e["event"] == "wap.published" and e["payload"]["commit"] == head.hash]
    assert published, [e["event"] for e in events]
    assert published[0]["payload"]["rows"] == 891 and published[0]["payload"]["added_rows"] == 891
    assert published[0]["payload"]["warnings"] == ["expect_column_values_to_not_be_null(Embarked)"]


def test_a_run_kept_for_inspection_names_its_warnings_too(files, tmp_path):
    lake = tmp_path / "lake"
    args = ("run", "titanic", "--source", str(files["embarked_nulls"]), "--on-success", "inspect")
    result = run_cli(*args, "--lakehouse", str(lake))
    assert result.returncode == 0, result.stdout + result.stderr
    line = [x for x in result.stdout.splitlines() if x.startswith("audited titanic: passed")][-1]
    assert "publish it with `wap publish" in line and "with warnings: [warning] titanic on the batch" in line, line
    assert not connect("local", lake).has_table("titanic", MAIN)


def test_a_failed_critical_rule_blocks_and_its_notes_reach_every_report(files, tmp_path):
    """A critical rule and a warning rule fail: blocked (exit 1); the error line, the report and the flow run's
    state name both, with their notes; the summary is printed once."""
    lake = tmp_path / "lake"
    result = run_cli("run", "titanic", "--source", str(files["both"]), "--lakehouse", str(lake))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("blocked: titanic: 2 of ") and "(1 warning, not blocking)" in last, last
    assert "expect_column_values_to_be_in_set on column 'Pclass'" in last and PCLASS_NOTE in last, last
    assert (
        "[warning] titanic on the batch: expect_column_values_to_not_be_null on column 'Embarked'" in last
        and EMBARKED_NOTE in last
    )
    assert not connect("local", lake).has_table("titanic", MAIN)

    report = latest_artifact("titanic-validation")
    assert report is not None
    markdown = report["data"]
    assert markdown.startswith("# titanic: BLOCKED by the audit")
    failed = markdown.split("## Failed expectations")[1].split("## Warnings")[0]
    assert "Pclass" in failed and f"Why the rule exists: {_pclass_notes()}" in failed
    assert "Embarked" in markdown.split("## Warnings and info (not blocking)")[1].split("## Run")[0]

    run = _flow_run(report["flow_run_id"])
    assert run["state"]["type"] == "FAILED" and run["state"]["name"] == "Blocked"
    message = run["state"]["message"]
    assert "\n" not in message and "titanic: 1 critical rule(s) failed" in message and "titanic-validation" in message


def _pclass_notes() -> str:
    suite = json.loads((REPO / "gx" / "expectations" / "titanic.json").read_text())
    [rule] = [
        e
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "Pclass"
    ]
    return " ".join(" ".join(rule["meta"]["notes"]["content"]).split())


def test_validate_passes_with_warnings_and_blocks_on_critical(files, tmp_path):
    warned = run_cli("validate", "titanic", "--source", str(files["embarked_nulls"]))
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert "passed with warnings:" in warned.stdout
    assert "warning" in warned.stdout.split("passed with warnings")[0]  # the table's status column
    assert "[warning]" in warned.stderr and EMBARKED_NOTE in warned.stderr

    blocked = run_cli("validate", "titanic", "--source", str(files["bad_pclass"]))
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    last = blocked.stderr.strip().splitlines()[-1]
    assert last.startswith("blocked: titanic: 1 of ") and PCLASS_NOTE in last, last


# ------------------------------------------------------------------------ severities of the table suite, info
@pytest.fixture
def gx_copy(tmp_path, monkeypatch) -> Path:
    """The shipped project with the table suite's Fare drift rule a warning and the Pclass value set info."""
    target = tmp_path / "gx"
    shutil.copytree(REPO / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    for name, kind, column, severity in (
        ("titanic_table", "expect_column_values_to_be_between", "Fare", "warning"),
        ("titanic", "expect_column_values_to_be_in_set", "Pclass", "info"),
    ):
        path = target / "expectations" / f"{name}.json"
        suite = json.loads(path.read_text())
        for e in suite["expectations"]:
            if e["type"] == kind and e["kwargs"].get("column") == column:
                e["severity"] = severity
        path.write_text(json.dumps(suite, indent=2))
    monkeypatch.setenv("WAP_GX_DIR", str(target))
    return target


def test_an_info_rule_is_report_only(files, tmp_path, gx_copy):
    lake = tmp_path / "lake"
    result = run_cli("run", "titanic", "--source", str(files["bad_pclass"]), "--lakehouse", str(lake))
    head, state = _published(result, lake)
    assert "with warnings" not in result.stdout and state == "Completed"  # info does not even warn
    assert head.properties["gx.warnings"] == ""
    assert head.properties["gx.infos"] == "expect_column_values_to_be_in_set(Pclass)"
    markdown = latest_artifact("titanic-validation")["data"]
    assert markdown.startswith("# titanic: PUBLISHED\n")
    assert "**info**" in markdown and "1 info" in markdown


def _fares(table: pa.Table, value: float) -> pa.Table:
    return table.set_column(table.schema.get_field_index("Fare"), "Fare", pa.array([value] * table.num_rows))


def test_an_append_whose_table_suite_only_warns_is_published(tmp_path, gx_copy):
    """The table suite's drift rule (no fare above twice main's highest) as a warning: the batch is appended."""
    lake = tmp_path / "lake"
    first = tmp_path / "first.parquet"
    pq.write_table(_fares(generate_titanic(100, seed=1), 100.0), first)
    assert run_cli("run", "titanic", "--source", str(first), "--lakehouse", str(lake)).returncode == 0
    batch = tmp_path / "batch.parquet"
    pq.write_table(_fares(generate_titanic(20, seed=2, first_id=101), 300.0), batch)
    result = run_cli("run", "titanic", "--source", str(batch), "--mode", "append", "--lakehouse", str(lake))
    head, state = _published(result, lake)
    assert state == "Published with warnings"
    assert "appended 20 rows (120 in the table)" in result.stdout and "with warnings" in result.stdout
    assert "titanic_table on the table as it would be published" in result.stdout
    assert head.properties["gx.warnings"] == "expect_column_values_to_be_between(Fare)"


# -------------------------------------------------------------------------------------------------- groups
def test_a_group_member_that_only_warns_is_published_with_its_group(tmp_path):
    """customers' country rule is a warning in the shipped suite: an unknown country publishes the group."""
    from flows.demo.shop import generate_customers, generate_orders, write_shop

    customers = generate_customers(50, seed=1)
    countries = customers.column("country").to_pylist()
    countries[0] = "XX"
    customers = customers.set_column(customers.schema.get_field_index("country"), "country", pa.array(countries))
    orders, items = generate_orders(20, customers=50, seed=1)
    sources = write_shop({"customers": customers, "orders": orders, "order_items": items}, tmp_path / "set")
    lake = tmp_path / "lake"
    args = [f"--source={m}={p}" for m, p in sources.items()]
    result = run_cli("run", "--group", "shop", *args, "--lakehouse", str(lake))
    head, state = _published(result, lake)
    assert state == "Published with warnings"
    line = [x for x in result.stdout.splitlines() if x.startswith("published group shop")][-1]
    assert "with warnings: customers: [warning] expect_column_values_to_be_in_set on column 'country'" in line, line
    assert head.properties["gx.warnings"] == "customers: expect_column_values_to_be_in_set(country)"
    assert head.properties["member.customers.gx.warnings"] == "expect_column_values_to_be_in_set(country)"
    group_report = latest_artifact("shop-validation")["data"]
    assert group_report.startswith("# group shop: PUBLISHED with warnings")
    assert "**warning** (not blocking)" in group_report and "Why the rule exists: The countries" in group_report
    events = _events("wap.published", "wap.dataset.shop", head.hash)
    [event] = [e for e in events if e["payload"]["commit"] == head.hash]
    assert event["payload"]["members"]["customers"]["rows"] == 50
    assert event["payload"]["warnings"] == ["customers: expect_column_values_to_be_in_set(country)"]


# ----------------------------------------------------------------------------------------------- wap suite
def _suite_gx(tmp_path: Path) -> dict[str, str]:
    target = tmp_path / "gx"
    shutil.copytree(REPO / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    return {"WAP_GX_DIR": str(target), "WAP_DATASETS": str(target / "datasets.yml")}


def test_suite_show_has_a_severity_column(tmp_path):
    shown = run_cli("suite", "show", "titanic", env=_suite_gx(tmp_path))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    header = next(x for x in shown.stdout.splitlines() if "expectation" in x and "mostly" in x)
    assert [c.strip() for c in header.split("┃")[1:-1]][4:6] == ["mostly", "severity"], header
    rows = [x for x in shown.stdout.splitlines() if x.count("│") >= 6 and "expect_" in x]
    severity = {(c[1], c[2]): c[5] for c in ([p.strip() for p in x.split("│")[1:-1]] for x in rows)}
    assert severity[("expect_column_values_to_not_be_null", "Embarked")] == "warning"
    assert severity[("expect_column_values_to_not_be_null", "Age")] == "critical"


def test_suite_check_refuses_an_unknown_severity(tmp_path):
    env = _suite_gx(tmp_path)
    path = Path(env["WAP_GX_DIR"]) / "expectations" / "titanic.json"
    suite = json.loads(path.read_text())
    suite["expectations"][1]["severity"] = "high"
    path.write_text(json.dumps(suite, indent=2))
    result = run_cli("suite", "check", "titanic", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = [x for x in result.stdout.splitlines() if "severity" in x]
    assert "expectations[1] expect_table_row_count_to_be_between" in line
    assert "severity 'high' is not one of critical (blocks the publish, the default), warning" in line, line


def test_suite_init_sets_severities(tmp_path, files):
    env = _suite_gx(tmp_path)
    result = run_cli("suite", "init", "passengers", "--source", str(files["clean"]), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    expectations = Path(env["WAP_GX_DIR"]) / "expectations"
    batch = json.loads((expectations / "passengers.json").read_text())["expectations"]
    assert {e["severity"] for e in batch} == {"critical"}  # the batch's contract blocks
    [drift] = json.loads((expectations / "passengers_table.json").read_text())["expectations"][:1]
    assert drift["type"] == "expect_table_row_count_to_be_between" and drift["severity"] == "warning"
    assert "Severity warning" in " ".join(drift["meta"]["notes"]["content"])


def test_a_cross_table_rule_that_only_warns_publishes_the_group(tmp_path, monkeypatch):
    """The group's referential rule made a warning: orphan items are reported, the group is published."""
    from flows.demo.shop import generate_customers, generate_orders, orphan_items, write_shop

    target = tmp_path / "gx"
    shutil.copytree(REPO / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    path = target / "expectations" / "shop.json"
    suite = json.loads(path.read_text())
    suite["expectations"][0]["severity"] = "warning"  # an item whose order exists nowhere
    path.write_text(json.dumps(suite, indent=2))
    monkeypatch.setenv("WAP_GX_DIR", str(target))
    orders, items = generate_orders(20, customers=30, seed=2)
    tables = {
        "customers": generate_customers(30, seed=2),
        "orders": orders,
        "order_items": orphan_items(items, 2, missing_from=900),
    }
    sources = write_shop(tables, tmp_path / "set")
    lake = tmp_path / "lake"
    result = run_cli(
        "run", "--group", "shop", *[f"--source={m}={p}" for m, p in sources.items()], "--lakehouse", str(lake)
    )
    head, state = _published(result, lake)
    assert state == "Published with warnings"
    assert head.properties["gx.warnings"] == "cross-table rules: unexpected_rows_expectation"
    assert "with warnings: cross-table rules: [warning]" in result.stdout and "Referential integrity" in result.stdout
    group_report = latest_artifact("shop-validation")["data"]
    assert "| **warning** |" in group_report.split("## Cross-table rules")[1]
