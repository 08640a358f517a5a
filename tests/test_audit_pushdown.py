"""The DuckDB pushdown gives GX's own pandas results, field by field, on the cases where they could drift.

Each case audits one table twice: ``pushdown=True`` (row metrics from DuckDB over the Parquet files) and
``pushdown=False`` (GX on the full pandas frame), and compares every expectation's full result JSON.
The table is imported in three files, so row positions must be counted across files; its columns
hold what pandas converts in its own way: int64 with nulls (float64 there), float NaN (null there),
strings with quotes, a column name with a space and a quote. Suites the pushdown cannot compute
exactly must fall back to pandas, and say so in ``AuditResult.row_metrics``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import great_expectations.expectations as gxe
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gx_helpers import bootstrap_dataset

from flows.audit import AuditConfigError, AuditResult, audit_table, get_context
from flows.lakehouse import MAIN, connect

REPO_GX = Path(__file__).resolve().parents[1] / "gx"
NAMESPACE = "bauplan"
WEIRD = 'weird "col"'


def edge_table(rows: int, start: int, *, bad: bool) -> pa.Table:
    ids: list[int | None] = list(range(start, start + rows))
    scores: list[float | None] = [(i % 10) / 10 for i in range(rows)]
    names = ["O'Brien" if i % 3 == 0 else 'say "hi"' if i % 3 == 1 else "x" for i in range(rows)]
    weird = ["a" if i % 2 else "b" for i in range(rows)]
    if bad:
        ids[5] = ids[9] = None
        ids[7] = start - 1  # a duplicate of the previous file's last id
        ids[11] = 99_999  # out of range
        scores[3] = float("nan")  # NaN: null to pandas, a number to DuckDB
        scores[4] = None
        scores[8] = 1.0  # strict_max excludes it
        names[6] = "O'Brian"
        weird[10] = None
        weird[12] = "c"
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "score": pa.array(scores, pa.float64()),  # NaN stays NaN (not null) in the files
            "name": pa.array(names, pa.string()),
            WEIRD: pa.array(weird, pa.string()),
        }
    )


def edge_expectations() -> list:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="id", mostly=0.5),
        gxe.ExpectColumnValuesToNotBeNull(column="score"),
        gxe.ExpectColumnValuesToNotBeNull(column=WEIRD),
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToBeBetween(column="id", min_value=0, max_value=5000),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0, max_value=1.0, strict_max=True),
        gxe.ExpectColumnValuesToBeBetween(column="score", min_value=0.05),
        gxe.ExpectColumnValuesToBeInSet(column="name", value_set=["O'Brien", 'say "hi"', "x"]),
        gxe.ExpectColumnValuesToBeInSet(column=WEIRD, value_set=["a", "b"]),
        gxe.ExpectColumnValuesToBeInSet(column="id", value_set=[1.0, 2, 3], mostly=0.0),
        gxe.ExpectColumnValuesToBeOfType(column="id", type_="float64"),
        gxe.ExpectColumnValuesToBeOfType(column="name", type_="str"),
        gxe.ExpectTableColumnsToMatchSet(column_set=["id", "score", "name", WEIRD]),
        gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=10_000),
        gxe.ExpectColumnToExist(column="missing"),
    ]


@pytest.fixture(scope="module")
def gx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("gxpush") / "gx"
    shutil.copytree(REPO_GX, target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


def make_checkpoint(gx_dir: Path, name: str, expectations: list, result_format: dict | None = None) -> str:
    import great_expectations as gx

    context = get_context(gx_dir)
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    checkpoint = bootstrap_dataset(context, name, suite)
    checkpoint.actions = []  # data docs are not what is compared here
    if result_format is not None:
        checkpoint.result_format = result_format
    checkpoint.save()
    return name


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lhpush")
    client = connect("local", root / "lakehouse")
    for branch, bad in (("edge.good", False), ("edge.bad", True)):
        client.create_branch(branch, MAIN)
        for part, start in enumerate((0, 1000, 2000)):
            source = root / f"{branch}-{part}.parquet"
            pq.write_table(edge_table(1000, start, bad=bad and part > 0), source, row_group_size=300)
            if part == 0:
                client.create_table("edge", str(source), branch=branch, namespace=NAMESPACE)
            client.import_data("edge", str(source), branch=branch, namespace=NAMESPACE)
    client.create_branch("edge.empty", MAIN)
    client.create_table("edge", str(root / "edge.good-0.parquet"), branch="edge.empty", namespace=NAMESPACE)
    return client


def results_json(result: AuditResult) -> list[str]:
    rows = []
    for r in result.validation_result.results:
        d = r.to_json_dict()
        d.pop("meta", None)
        rows.append(json.dumps(d, sort_keys=True, default=str))
    return rows


def audit_both(lakehouse, gx_dir: Path, branch: str, checkpoint: str) -> tuple[AuditResult, AuditResult]:
    kwargs = dict(ref=branch, namespace=NAMESPACE, checkpoint=checkpoint, gx_dir=gx_dir)
    return (
        audit_table(lakehouse, "edge", pushdown=True, run_name=f"push-{branch}", **kwargs),
        audit_table(lakehouse, "edge", pushdown=False, run_name=f"plain-{branch}", **kwargs),
    )


def test_three_files_hold_the_rows_the_cases_need(lakehouse) -> None:
    _, files = lakehouse.data_files("edge", ref="edge.bad", namespace=NAMESPACE)
    assert len(files) == 3
    assert lakehouse.data_files("edge", ref="edge.empty", namespace=NAMESPACE)[1] == []


@pytest.mark.parametrize("branch", ["edge.good", "edge.bad", "edge.empty"])
def test_pushdown_results_equal_gx_on_pandas(lakehouse, gx_dir: Path, branch: str) -> None:
    checkpoint = make_checkpoint(gx_dir, "edge_all", edge_expectations())
    pushed, plain = audit_both(lakehouse, gx_dir, branch, checkpoint)
    assert pushed.row_metrics == "duckdb" and plain.row_metrics == "pandas"
    assert results_json(pushed) == results_json(plain)
    assert pushed.statistics == plain.statistics
    if branch == "edge.bad":
        failed = {(e.expectation_type, e.column) for e in pushed.failed}
        assert failed >= {
            ("expect_column_values_to_not_be_null", "score"),
            ("expect_column_values_to_not_be_null", WEIRD),
            ("expect_column_values_to_be_unique", "id"),
            ("expect_column_values_to_be_between", "id"),
            ("expect_column_values_to_be_between", "score"),
            ("expect_column_values_to_be_in_set", "name"),
            ("expect_column_values_to_be_in_set", WEIRD),
        }
        unique = next(e for e in pushed.failed if e.expectation_type == "expect_column_values_to_be_unique")
        # Each bad file repeats id 99999 and the id before it: six rows, positions counted across files.
        assert unique.unexpected_count == 6
        positions = unique.partial_unexpected_index_list
        assert positions == sorted(positions) and max(positions) >= 2000
        assert sorted(unique.partial_unexpected_list).count(99_999.0) == 2  # floats: the column has nulls


def test_pushdown_batch_is_identified_by_its_files(lakehouse, gx_dir: Path) -> None:
    checkpoint = make_checkpoint(gx_dir, "edge_all", edge_expectations())
    pushed, plain = audit_both(lakehouse, gx_dir, "edge.good", checkpoint)
    markers = pushed.validation_result.meta["batch_markers"]
    assert "pandas_data_fingerprint" not in markers  # it would be the hash of a zero-row frame
    assert len(markers["parquet_files_fingerprint"]) == 32
    assert "pandas_data_fingerprint" in plain.validation_result.meta["batch_markers"]


FALLBACKS = {
    "row_condition": (
        [
            gxe.ExpectColumnValuesToBeBetween(
                column="score", min_value=0, max_value=0.5, row_condition='name=="x"', condition_parser="pandas"
            )
        ],
        None,
    ),
    "mixed_value_set": (
        [gxe.ExpectColumnValuesToBeInSet(column="id", value_set=[1, "1"])],
        None,
    ),
    "aggregate_metric": (
        [gxe.ExpectColumnMeanToBeBetween(column="score", min_value=0, max_value=1)],
        None,
    ),
    "complete_result_format": (
        [gxe.ExpectColumnValuesToBeInSet(column="name", value_set=["x"])],
        {"result_format": "COMPLETE"},
    ),
    "between_on_strings": (
        [gxe.ExpectColumnValuesToBeBetween(column="name", min_value=0, max_value=10)],
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_what_the_pushdown_cannot_compute_runs_on_pandas(lakehouse, gx_dir: Path, case: str) -> None:
    expectations, result_format = FALLBACKS[case]
    checkpoint = make_checkpoint(gx_dir, f"edge_{case}", expectations, result_format)
    pushed, plain = audit_both(lakehouse, gx_dir, "edge.bad", checkpoint)
    assert pushed.row_metrics == "pandas"
    assert results_json(pushed) == results_json(plain)


def test_auto_mode_uses_pandas_for_small_tables_and_checks_its_setting(
    lakehouse, gx_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = make_checkpoint(gx_dir, "edge_all", edge_expectations())
    kwargs = dict(ref="edge.good", namespace=NAMESPACE, checkpoint=checkpoint, gx_dir=gx_dir)
    assert audit_table(lakehouse, "edge", **kwargs).row_metrics == "pandas"  # 3000 rows < PUSHDOWN_MIN_ROWS
    monkeypatch.setenv("WAP_AUDIT_PUSHDOWN", "always")
    assert audit_table(lakehouse, "edge", **kwargs).row_metrics == "duckdb"
    monkeypatch.setenv("WAP_AUDIT_PUSHDOWN", "sometimes")
    with pytest.raises(AuditConfigError, match="WAP_AUDIT_PUSHDOWN must be one of auto, always, never"):
        audit_table(lakehouse, "edge", **kwargs)
