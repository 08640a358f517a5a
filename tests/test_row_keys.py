"""Failing rows you can find (issue 15 item 8): a dataset's `key` names its failing rows in the results and the
reports, and a failed branch kept for inspection comes with a `wap query ... --ref <branch>` per failed rule that
lists exactly the rows the audit counted.

Real GX context (a session copy of gx/), real DuckDB, the real embedded lakehouse and a real Prefect test server;
the CLI in-process. The expected rows are computed here with pyarrow, independently of GX and of the SQL.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from gate_fixtures import latest_artifact, run_cli

from flows.audit import AuditConfigError, run_checkpoint, table_to_dataframe
from flows.audit.failing_rows import failing_rows_query
from flows.datasets import Dataset, DatasetError, load_datasets
from flows.demo.data import corrupt, generate_titanic
from flows.reports.text import describe_failures, query_command

KEY = ("PassengerId",)


def _ids(table: pa.Table, mask: pa.ChunkedArray) -> list[int]:
    return sorted(table.filter(mask).column("PassengerId").to_pylist())


def _bad_sex(table: pa.Table) -> list[int]:
    sex = table.column("Sex")
    return _ids(table, pc.and_(pc.is_valid(sex), pc.invert(pc.is_in(sex, pa.array(["male", "female"])))))


def _declare(tmp_path: Path, **changes: object) -> dict[str, str]:
    """The shipped datasets.yml, its titanic entry changed; the env naming it."""
    shipped = yaml.safe_load((Path(os.environ["WAP_GX_DIR"]) / "datasets.yml").read_text())
    shipped["datasets"]["titanic"].update(changes)
    path = tmp_path / "datasets.yml"
    path.write_text(yaml.safe_dump(shipped, sort_keys=False))
    return {"WAP_DATASETS": str(path)}


# ---------------------------------------------------------------- the declaration


@pytest.mark.parametrize(
    ("value", "expected"), [("PassengerId", ("PassengerId",)), (["order_id", "line"], ("order_id", "line"))]
)
def test_a_key_is_a_column_or_a_list_of_them_and_round_trips(tmp_path, value, expected):
    path = tmp_path / "datasets.yml"
    path.write_text(yaml.safe_dump({"datasets": {"t": {"source": "t.csv", "key": value}}}))
    dataset = load_datasets(path)["t"]
    assert dataset.key == expected
    assert dataset.to_dict()["key"] == list(expected)
    assert "key" not in Dataset("u", "u.csv", "u").to_dict()  # no key: nothing written


@pytest.mark.parametrize(
    ("value", "said"),
    [(5, "key must be a column name or a list of column names"), (["a", "a"], "key names a column twice: a, a")],
)
def test_a_bad_key_is_one_line_naming_the_dataset(tmp_path, value, said):
    path = tmp_path / "datasets.yml"
    path.write_text(yaml.safe_dump({"datasets": {"t": {"source": "t.csv", "key": value}}}))
    with pytest.raises(DatasetError) as raised:
        load_datasets(path)
    assert "dataset 't'" in str(raised.value) and said in str(raised.value) and "\n" not in str(raised.value)


# ---------------------------------------------------------------- the audit


@pytest.fixture(scope="module")
def bad_sex() -> pa.Table:
    return corrupt(generate_titanic(891, seed=11), "unknown_sex")


def test_failing_rows_are_named_by_key_in_the_results_and_the_text(isolated_gx, bad_sex):
    result = run_checkpoint(table_to_dataframe(bad_sex), "titanic", key_columns=KEY)
    [sex] = [e for e in result.failed if e.column == "Sex"]
    expected = _bad_sex(bad_sex)
    assert expected and sex.unexpected_count == len(expected)
    assert sorted(k["PassengerId"] for k in sex.failing_row_keys) == expected[:20]
    text = describe_failures(result)
    assert f"at rows PassengerId {', '.join(map(str, expected[:5]))}" in text
    # Without a key, GX's samples are row positions, as before.
    plain = run_checkpoint(table_to_dataframe(bad_sex), "titanic")
    assert not [e for e in plain.failed if e.failing_row_keys] and "at rows PassengerId" not in describe_failures(plain)


def test_a_key_column_the_data_lacks_is_a_config_error_naming_it(isolated_gx, bad_sex):
    with pytest.raises(AuditConfigError, match=r"key column 'PassengerID' \(gx/datasets.yml key:\) is not a column"):
        run_checkpoint(table_to_dataframe(bad_sex), "titanic", key_columns=("PassengerID",))


@pytest.mark.parametrize("kind", ["unknown_sex", "age_out_of_range", "null_name", "duplicate_ids", "unknown_embarked"])
def test_each_failed_rules_query_lists_exactly_the_rows_the_audit_counted(isolated_gx, kind):
    table = corrupt(generate_titanic(891, seed=12), kind)
    result = run_checkpoint(table_to_dataframe(table), "titanic", key_columns=KEY)
    row_rules = [e for e in result.failed if e.unexpected_count is not None and e.column]
    assert row_rules, kind
    con = duckdb.connect()
    con.register("titanic", table)
    for e in row_rules:
        query = failing_rows_query(e, "titanic", table.schema, KEY)
        assert query is not None and query.every_row, e.expectation_type
        rows = con.execute(query.sql).fetchall()
        assert len(rows) == e.unexpected_count, (query.sql, e.expectation_type)
        if e.column != "PassengerId":  # the key first, in key order, then the rule's column
            sampled = sorted(k["PassengerId"] for k in e.failing_row_keys)
            assert [r[0] for r in rows][: len(sampled)] == sampled or set(sampled) <= {r[0] for r in rows}
            assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def test_a_rule_without_sql_lists_its_sampled_rows_by_key(isolated_gx):
    """A row rule the pushdown has no SQL for still gets a listing: GX's sampled failing rows, by key."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from flows.audit.checkpoint import ExpectationOutcome

    table = pa.table({"PassengerId": [1, 2, 3, 4], "Name": ["2020-01-01", "not a date", "2021-02-03", "nope"]})
    config = ExpectationConfiguration(type="expect_column_values_to_be_dateutil_parseable", kwargs={"column": "Name"})
    outcome = ExpectationOutcome(
        expectation_type=config.type,
        column="Name",
        kwargs={},
        success=False,
        unexpected_count=2,
        partial_unexpected_list=["not a date", "nope"],
        partial_unexpected_index_list=[{"Name": "not a date", "PassengerId": 2}, {"Name": "nope", "PassengerId": 4}],
        key_columns=KEY,
    )
    query = failing_rows_query(outcome, "titanic", table.schema, KEY)
    assert query is not None and not query.every_row
    con = duckdb.connect()
    con.register("titanic", table)
    assert con.execute(query.sql).fetchall() == [(2, "not a date"), (4, "nope")]
    # Without a key there is nothing to name the rows by.
    assert failing_rows_query(outcome, "titanic", table.schema, ()) is None


def _as_bash_reads(command: str) -> list[str]:
    """The words a real POSIX shell (bash) makes of ``command``."""
    said = subprocess.run(["bash", "-c", f"set -- {command}; printf '%s\\0' \"$@\""], capture_output=True, check=True)
    return said.stdout.decode().split("\0")[:-1]


def test_the_command_survives_a_shell():
    sql = """SELECT "select", a FROM t WHERE a = 'it''s $HOME `x` \\ "q"'"""
    command = query_command(sql, "alice.wap_t@abc", lakehouse="/tmp/my lake")
    assert _as_bash_reads(command) == ["wap", "query", sql, "--ref", "alice.wap_t@abc", "--lakehouse", "/tmp/my lake"]
    assert "--backend bauplan" in query_command(sql, "b", backend="bauplan")


# ---------------------------------------------------------------- a blocked run, its branch kept


@pytest.mark.usefixtures("prefect_api")
def test_a_kept_failed_branch_comes_with_a_query_per_rule_that_lists_its_rows(tmp_path):
    table = corrupt(generate_titanic(891, seed=13), "unknown_sex")
    source = tmp_path / "bad.parquet"
    pq.write_table(table, source)
    lake, branch = tmp_path / "lake", "tester.wap_titanic_keys"
    env = _declare(tmp_path, key="PassengerId", on_failure="inspect")
    run = run_cli("run", "titanic", "--source", str(source), "--branch", branch, "--lakehouse", str(lake), env=env)
    assert run.returncode == 1, run.stdout + run.stderr
    said = run.stdout + run.stderr
    lines = [line for line in said.splitlines() if "failing rows of expect_column_values_to_be_in_set (Sex)" in line]
    assert lines, said
    command = lines[0].split(": wap query ", 1)[1]
    argv = _as_bash_reads("wap query " + command)
    assert argv[:2] == ["wap", "query"] and argv[3:5] == ["--ref", branch] and str(lake) in argv
    listed = run_cli(*argv[1:], "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    import json

    rows = json.loads(listed.stdout)
    assert sorted(r["PassengerId"] for r in rows) == _bad_sex(table)
    assert {r["Sex"] for r in rows} <= {"M", "F", "unknown"}
    report = latest_artifact("titanic-validation")["data"]
    assert "Its failing rows, rule by rule" in report and f"--ref {branch}" in report
    assert "at rows PassengerId " in report


def test_wap_validate_names_failing_rows_by_key(isolated_gx, tmp_path, bad_sex):
    source = tmp_path / "bad.parquet"
    pq.write_table(bad_sex, source)
    said = run_cli("validate", "titanic", "--source", str(source), "--lakehouse", str(tmp_path / "lake"))
    assert said.returncode == 1, said.stdout + said.stderr
    ids = ", ".join(map(str, _bad_sex(bad_sex)[:5]))
    assert f"at rows PassengerId {ids}" in " ".join((said.stdout + said.stderr).split())
