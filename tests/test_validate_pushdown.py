"""`wap validate --source FILE.parquet` computes row metrics with DuckDB over the file (flows/audit/file_metrics.py)
and gives GX's own pandas results field by field: each case validates one file twice, WAP_AUDIT_PUSHDOWN=always
and =never, on the real GX context (a copy of the shipped gx/) and real files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from gate_fixtures import run_cli
from test_audit_pushdown import results_json

from flows.audit.files import validate_source
from flows.datasets import get_dataset
from flows.demo.data import generate_titanic
from flows.lakehouse import MAIN, connect

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # each validation builds GX results twice (~10 s a test)
REAL_TITANIC = REPO.parent / "shared" / "data" / "titanic.csv"


@pytest.fixture(scope="module")
def gx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("gxvalidate") / "gx"
    shutil.copytree(REPO / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


def both(source: Path, gx_dir: Path, client=None, monkeypatch=None):
    dataset = get_dataset("titanic")
    results = {}
    for mode in ("always", "never"):
        monkeypatch.setenv("WAP_AUDIT_PUSHDOWN", mode)
        results[mode] = validate_source(dataset, str(source), client, gx_dir=gx_dir, run_name=f"v-{mode}")
    return results["always"], results["never"]


def assert_same(pushed, plain) -> None:
    assert [s.row_metrics for s in pushed.suites] == ["duckdb", "duckdb"]
    assert [s.row_metrics for s in plain.suites] == ["pandas", "pandas"]
    assert results_json(pushed) == results_json(plain)
    for a, b in zip(pushed.suites, plain.suites, strict=True):
        assert results_json_of(a) == results_json_of(b)
        assert a.statistics == b.statistics and a.rows == b.rows
    assert pushed.baseline.parameters == plain.baseline.parameters
    assert pushed.success == plain.success


def results_json_of(suite) -> list[str]:
    return [
        json.dumps({k: v for k, v in r.to_json_dict().items() if k != "meta"}, sort_keys=True, default=str)
        for r in suite.validation_result.results
    ]


def edgy_titanic(rows: int) -> pa.Table:
    """Titanic-shaped rows that fail: a duplicate id, null ids (int64 with nulls: float64 in pandas), NaN and null
    fares, unicode names, an unknown Embarked, out-of-range ages."""
    table = generate_titanic(rows, seed=7).to_pydict()
    table["PassengerId"][3] = table["PassengerId"][2]
    table["PassengerId"][5] = None
    table["Fare"][4] = float("nan")
    table["Fare"][6] = None
    table["Fare"][8] = -1.0
    table["Name"][7] = "Ünïcødé, Mr. 北京 \"quoted\" 'x'"
    table["Embarked"][9] = "X"
    table["Age"][10] = 140.0
    return pa.table(table, schema=generate_titanic(1).schema)


@pytest.mark.parametrize("case", ["clean", "edgy", "empty"])
def test_parquet_pushdown_equals_pandas(tmp_path, gx_dir, monkeypatch, case) -> None:
    table = {"clean": generate_titanic(3000, seed=1), "edgy": edgy_titanic(3000), "empty": generate_titanic(0)}[case]
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=1000)
    pushed, plain = both(path, gx_dir, monkeypatch=monkeypatch)
    assert_same(pushed, plain)
    if case == "edgy":
        failed = {(e.expectation_type, e.column) for e in pushed.failed}
        assert ("expect_column_values_to_be_unique", "PassengerId") in failed
        assert ("expect_column_values_to_be_in_set", "Embarked") in failed
        assert ("expect_column_values_to_be_between", "Fare") in failed
    assert pushed.success == (case == "clean")


def test_a_directory_of_parquet_files_counts_positions_across_files(tmp_path, gx_dir, monkeypatch) -> None:
    table = edgy_titanic(3000)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate(range(0, 3000, 1000)):
        pq.write_table(table.slice(start, 1000), folder / f"part-{i}.parquet")
    pushed, plain = both(folder, gx_dir, monkeypatch=monkeypatch)
    assert_same(pushed, plain)


def test_against_main_with_a_new_column(tmp_path, gx_dir, monkeypatch) -> None:
    lake = tmp_path / "lake"
    client = connect("local", lake)
    on_main = tmp_path / "main.parquet"
    pq.write_table(generate_titanic(500, seed=1), on_main)
    client.create_branch("alice.load", from_ref=MAIN)
    client.create_table("titanic", str(on_main), branch="alice.load")
    client.import_data("titanic", str(on_main), branch="alice.load")
    client.merge_branch("alice.load", MAIN)
    fresh = generate_titanic(2000, seed=2)
    fresh = fresh.append_column("Extra", pa.array([None if i % 3 else i for i in range(2000)], pa.int64()))
    path = tmp_path / "fresh.parquet"
    pq.write_table(fresh, path)
    pushed, plain = both(path, gx_dir, client, monkeypatch=monkeypatch)
    assert_same(pushed, plain)
    assert pushed.baseline.parameters["main_has_table"] == 1


def test_csv_and_unanswerable_suites_stay_on_pandas(tmp_path, gx_dir, monkeypatch) -> None:
    path = tmp_path / "t.csv"
    pacsv.write_csv(generate_titanic(300, seed=1), path)
    monkeypatch.setenv("WAP_AUDIT_PUSHDOWN", "always")
    result = validate_source(get_dataset("titanic"), str(path), None, gx_dir=gx_dir)
    assert [s.row_metrics for s in result.suites] == ["pandas", "pandas"]


@pytest.mark.skipif(not REAL_TITANIC.is_file(), reason="no ../shared/data/titanic.csv")
def test_the_real_titanic_as_parquet(tmp_path, gx_dir, monkeypatch) -> None:
    path = tmp_path / "real.parquet"
    pq.write_table(pacsv.read_csv(REAL_TITANIC), path)
    pushed, plain = both(path, gx_dir, monkeypatch=monkeypatch)
    assert_same(pushed, plain)


def test_wap_validate_says_duckdb_computed_the_row_metrics(tmp_path, gx_dir) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(generate_titanic(500, seed=1), path)
    env = {"WAP_GX_DIR": str(gx_dir), "WAP_AUDIT_PUSHDOWN": "always"}
    done = run_cli("validate", "titanic", "--source", str(path), "--lakehouse", str(tmp_path / "none"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "row metrics: titanic: computed by DuckDB over the file" in done.stdout
    assert "titanic_table: computed by DuckDB over the file" in done.stdout
    assert os.environ.get("WAP_AUDIT_PUSHDOWN") != "always"  # run_cli's env did not leak


def test_the_files_facts_equal_those_of_the_frame_and_the_table(tmp_path) -> None:
    """Every fact (wanted=None), not only those the titanic suite uses: a first run's are the pandas frame's (an
    int64 column with nulls measured as float64), a new column's the Arrow table's."""
    from flows.audit.baseline import measure_frame
    from flows.audit.checkpoint import table_to_dataframe
    from flows.audit.file_metrics import SourceFileMetrics
    from flows.lakehouse.sources import open_source, read_source

    path = tmp_path / "t.parquet"
    pq.write_table(edgy_titanic(2000), path, row_group_size=700)
    arrow = read_source(str(path))
    with open_source(str(path)) as opened:
        metrics = SourceFileMetrics(opened)
        try:
            first = metrics.measure(measured="m", wanted=None, as_frame=True).parameters
            new = metrics.measure(measured="m", wanted=None, columns=["PassengerId", "Name"]).parameters
        finally:
            metrics.close()
    assert first == measure_frame(table_to_dataframe(arrow), measured="m").parameters
    assert isinstance(first["main_passengerid_max"], float)  # the column has a null: float64 in pandas
    assert new == measure_frame(arrow.select(["PassengerId", "Name"]), measured="m").parameters
    assert isinstance(new["main_passengerid_max"], int)
