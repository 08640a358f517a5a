"""Why the audit ran on the slow path (issue 15 item 9): the rules the SQL pushdown cannot answer are named, by
suite, in the audit's report and as a `wap suite check` warning (which does not fail the check).

Real GX context (a private copy of gx/ with two extra rules), a real audit of generated titanic data through the
embedded lakehouse (`wap validate --source` in process), and `wap suite check --source`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from gate_fixtures import REPO, run_cli

from flows.demo.data import generate_titanic, write_csv

# Rules the pushdown does not reproduce exactly on any column type (numpy's rounding of a standard deviation).
EXTRA = [
    {"type": "expect_column_stdev_to_be_between", "kwargs": {"column": "Fare", "min_value": 0}},
    {"type": "expect_column_stdev_to_be_between", "kwargs": {"column": "Age", "min_value": 0}},
]
# A range on a text column: answerable on a number column, so named only where the column's type is known.
TEXT_RANGE = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "Name", "min_value": 0}}
NAMED = "titanic: expect_column_stdev_to_be_between (Fare), expect_column_stdev_to_be_between (Age)"


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path, Path]:
    root = tmp_path_factory.mktemp("slow")
    gx = root / "gx"
    shutil.copytree(REPO / "gx", gx, ignore=shutil.ignore_patterns("uncommitted"))
    path = gx / "expectations" / "titanic.json"
    suite = json.loads(path.read_text())
    suite["expectations"] += EXTRA
    path.write_text(json.dumps(suite, indent=2))
    source = write_csv(generate_titanic(891, seed=3), root / "titanic.csv")
    return {"WAP_GX_DIR": str(gx), "WAP_DATASETS": str(gx / "datasets.yml")}, source, gx


def test_the_report_names_every_rule_that_sent_the_audit_to_pandas(slow, tmp_path: Path) -> None:
    from flows.audit import audit_table
    from flows.gate.outcome import GateOutcome
    from flows.lakehouse import MAIN, connect
    from flows.reports.markdown import render_markdown

    _, source, gx = slow
    client = connect("local", tmp_path / "lake")
    client.create_branch("b", MAIN)
    client.create_table("titanic", str(source), branch="b")
    client.import_data("titanic", str(source), branch="b")
    # pushdown=True: tried at any size (auto skips it below PUSHDOWN_MIN_ROWS rows).
    result = audit_table(client, "titanic", ref="b", checkpoint="titanic", gx_dir=gx, pushdown=True)
    batch = result.suites[0]
    assert batch.row_metrics == "pandas"
    assert batch.row_metrics_fallback == f"the pushdown cannot answer: {NAMED}"
    assert result.suites[1].row_metrics == "duckdb"  # the table suite's rules are all answered
    outcome = GateOutcome(
        dataset="titanic", branch="b", source=str(source), rows=891, audited_commit="c", published_commit=None,
        audit=result,
    )  # fmt: skip
    report = render_markdown(outcome)
    assert f"computed by GX on the table read into pandas, because the pushdown cannot answer: {NAMED}" in report


def test_suite_check_warns_of_the_rules_and_passes(slow) -> None:
    env, source, _ = slow
    result = run_cli("suite", "check", "titanic", "--source", str(source), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("WARNING:")]
    assert any("these rules send the audit to the slower pandas path" in w and NAMED in w for w in warnings), (
        result.stdout
    )
    assert "ok: no problems found" in result.stdout
    assert not any("titanic_table" in w and "pandas path" in w for w in warnings)  # its rules are all pushed down


def test_suite_check_of_the_shipped_suites_names_no_rule(tmp_path: Path) -> None:
    gx = tmp_path / "gx"
    shutil.copytree(REPO / "gx", gx, ignore=shutil.ignore_patterns("uncommitted"))
    result = run_cli("suite", "check", "--lakehouse", str(tmp_path / "none"), env={"WAP_GX_DIR": str(gx),
                     "WAP_DATASETS": str(gx / "datasets.yml")})  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pandas path" not in result.stdout, result.stdout


def test_suite_check_decides_on_the_column_types_of_the_table_on_main(slow, tmp_path: Path) -> None:
    from flows.lakehouse import MAIN, connect

    env, source, gx = slow
    own = tmp_path / "gx"
    shutil.copytree(gx, own)
    path = own / "expectations" / "titanic.json"
    suite = json.loads(path.read_text())
    suite["expectations"].append(TEXT_RANGE)
    path.write_text(json.dumps(suite, indent=2))
    env = {"WAP_GX_DIR": str(own), "WAP_DATASETS": str(own / "datasets.yml")}
    named = f"{NAMED}, expect_column_values_to_be_between (Name)"

    unknown = run_cli("suite", "check", "titanic", "--lakehouse", str(tmp_path / "none"), env=env)
    assert unknown.returncode == 0, unknown.stdout + unknown.stderr
    assert NAMED in unknown.stdout and named not in unknown.stdout  # without types: only what no type allows

    lake = tmp_path / "lake"
    client = connect("local", lake)
    client.create_table("titanic", str(source), branch=MAIN)
    client.import_data("titanic", str(source), branch=MAIN)
    known = run_cli("suite", "check", "titanic", "--lakehouse", str(lake), env=env)
    assert known.returncode == 0, known.stdout + known.stderr
    assert named in known.stdout, known.stdout
