"""Column aggregate and distinct-value rules stay on the pushdown, with GX's own pandas results field by field.

Each case audits one table on the pushdown (DuckDB over its Parquet files, and the lakehouse's ``client.query``
through ``QueryOnlyClient``) and with GX on the full pandas frame, and compares every expectation's result JSON
and the Python types of the observed values (numpy ints and floats, NaN, the order of ties and of missing
values). The tables hold what pandas treats its own way: an int64 column with nulls (float64 there), NaN in a
float column (null there), an all-null column of each type, unicode strings with ties in their most common
value, and an empty table. Every rule is asked twice, once passing and once failing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import great_expectations.expectations as gxe
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_audit_pushdown import gx_dir, make_checkpoint  # noqa: F401
from test_audit_pushdown_query import QueryOnlyClient

from flows.audit import AuditResult, audit_table
from flows.audit.pushdown import rules_sent_to_pandas
from flows.lakehouse import MAIN, connect

NAMESPACE = "bauplan"
WORDS = ["Zoë", "日本語", "🎉", "O'Brien", "Zoë", "日本語", "b", "a"]  # Zoë and 日本語 tie for the most common


def agg_table(rows: int, *, bad: bool) -> pa.Table:
    ints: list[int | None] = [i % 7 for i in range(rows)]
    holes: list[int | None] = [i * 3 if i % 5 else None for i in range(rows)]  # int64 with nulls: float64 in pandas
    floats: list[float | None] = [(i % 11) / 4 for i in range(rows)]
    floats[1] = float("nan")  # null to pandas, a number to DuckDB (it sorts above every number)
    floats[2] = None
    words: list[str | None] = [WORDS[i % len(WORDS)] for i in range(rows)]
    words[3] = None
    if bad:
        ints[4] = -40
        holes[6] = 10**6
        floats[7] = -2.5
        words[8] = "Zoe"  # not Zoë
    return pa.table(
        {
            "i": pa.array(ints, pa.int64()),
            "holes": pa.array(holes, pa.int64()),
            "f": pa.array(floats, pa.float64()),
            "s": pa.array(words, pa.string()),
            "none_i": pa.array([None] * rows, pa.int64()),
            "none_f": pa.array([None] * rows, pa.float64()),
            "none_s": pa.array([None] * rows, pa.string()),
        }
    )


def _between(cls: Any, column: str, low: float, high: float) -> list:
    """The rule passing on the good table, and failing (a range no value reaches)."""
    return [cls(column=column, min_value=low, max_value=high), cls(column=column, min_value=high + 1e6)]


def aggregate_expectations() -> list:
    rules: list = []
    for column in ("i", "holes", "f", "none_i", "none_f"):
        rules += _between(gxe.ExpectColumnMinToBeBetween, column, -1, 1)
        rules += _between(gxe.ExpectColumnMaxToBeBetween, column, 0, 10**5)
        rules += _between(gxe.ExpectColumnMedianToBeBetween, column, 0, 10**5)
    for column in ("i", "holes", "none_i"):
        rules += _between(gxe.ExpectColumnSumToBeBetween, column, 0, 10**9)
        rules += _between(gxe.ExpectColumnMeanToBeBetween, column, 0, 10**5)
    return rules


def distinct_expectations() -> list:
    rules: list = []
    sets = {
        "i": ([0, 1, 2, 3, 4, 5, 6], [0, 1.0, 2]),
        "holes": ([float(3 * i) for i in range(400)], [3, 6, 7, 8, 9, 10, 11, 12, 13, 14]),
        "f": ([(i % 11) / 4 for i in range(11)], [0.25, 0.5, 99.0]),
        "s": (["Zoë", "日本語", "🎉", "O'Brien", "b", "a"], ["Zoë", "x", "y", "z", "w", "v", "u", "t", "s"]),
        "none_s": (["x"], ["y", "z"]),
        "none_f": ([1.0], [1.5]),
    }
    for column, (full, other) in sets.items():
        for value_set in (full, other):
            rules += [
                gxe.ExpectColumnDistinctValuesToBeInSet(column=column, value_set=value_set),
                gxe.ExpectColumnDistinctValuesToContainSet(column=column, value_set=value_set),
                gxe.ExpectColumnDistinctValuesToEqualSet(column=column, value_set=value_set),
                gxe.ExpectColumnMostCommonValueToBeInSet(column=column, value_set=value_set),
                gxe.ExpectColumnMostCommonValueToBeInSet(column=column, value_set=value_set, ties_okay=True),
            ]
        rules += _between(gxe.ExpectColumnUniqueValueCountToBeBetween, column, 0, 7)
        rules += _between(gxe.ExpectColumnProportionOfUniqueValuesToBeBetween, column, 0, 0.5)
    return rules


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory: pytest.TempPathFactory):
    """Branches agg.good / agg.bad (two data files each) and agg.empty (the table without rows)."""
    root = tmp_path_factory.mktemp("lhagg")
    client = connect("local", root / "lakehouse")
    for branch, bad in (("agg.good", False), ("agg.bad", True)):
        client.create_branch(branch, MAIN)
        for part in range(2):
            source = root / f"{branch}-{part}.parquet"
            pq.write_table(agg_table(400, bad=bad and part == 1), source, row_group_size=150)
            if part == 0:
                client.create_table("agg", str(source), branch=branch, namespace=NAMESPACE)
            client.import_data("agg", str(source), branch=branch, namespace=NAMESPACE)
    client.create_branch("agg.empty", MAIN)
    client.create_table("agg", str(root / "agg.good-0.parquet"), branch="agg.empty", namespace=NAMESPACE)
    return client


def _typed(value: Any) -> Any:
    """A value with its Python type, NaN comparable (NaN != NaN)."""
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return (type(value).__name__, "nan")
    return (type(value).__name__, value)


def results(result: AuditResult) -> list[tuple[str, Any]]:
    rows = []
    for r in result.validation_result.results:
        d = r.to_json_dict()
        d.pop("meta", None)
        observed = r.result.get("observed_value")
        details = r.result.get("details")
        rows.append((json.dumps(d, sort_keys=True, default=str), _typed(observed), repr(details)))
    return rows


def audit_both(client: Any, plain_client: Any, gx_dir: Path, branch: str, checkpoint: str):  # noqa: F811
    kwargs = dict(ref=branch, namespace=NAMESPACE, checkpoint=checkpoint, gx_dir=gx_dir)
    return (
        audit_table(client, "agg", pushdown=True, run_name=f"push-{branch}", **kwargs),
        audit_table(plain_client, "agg", pushdown=False, run_name=f"plain-{branch}", **kwargs),
    )


SUITES = {"aggregates": aggregate_expectations, "distinct": distinct_expectations}


@pytest.mark.parametrize("suite", sorted(SUITES))
@pytest.mark.parametrize("branch", ["agg.good", "agg.bad", "agg.empty"])
@pytest.mark.parametrize("source", ["duckdb", "query"])
def test_aggregate_rules_stay_on_the_pushdown_with_gx_results(
    lakehouse,
    gx_dir: Path,  # noqa: F811
    branch: str,
    suite: str,
    source: str,
) -> None:
    checkpoint = make_checkpoint(gx_dir, f"agg_{suite}", SUITES[suite]())
    client = lakehouse if source == "duckdb" else QueryOnlyClient(lakehouse)
    pushed, plain = audit_both(client, lakehouse, gx_dir, branch, checkpoint)
    assert pushed.row_metrics == source, pushed.suite_audit("batch").row_metrics_fallback  # no fallback
    assert plain.row_metrics == "pandas"
    assert results(pushed) == results(plain)
    assert pushed.statistics == plain.statistics
    statistics = pushed.statistics
    if branch == "agg.good":  # each rule is asked passing and failing
        assert 0 < statistics["successful"] < statistics["evaluated"]


def test_rules_it_cannot_reproduce_still_run_on_pandas(lakehouse, gx_dir: Path) -> None:  # noqa: F811
    """A float column's mean and sum (numpy's pairwise rounding) and a standard deviation are not pushed down."""
    rules = [
        gxe.ExpectColumnMeanToBeBetween(column="f", min_value=0, max_value=5),
        gxe.ExpectColumnSumToBeBetween(column="f", min_value=0, max_value=10**5),
        gxe.ExpectColumnStdevToBeBetween(column="i", min_value=0, max_value=5),
    ]
    for rule in rules:
        checkpoint = make_checkpoint(gx_dir, "agg_refused", [rule])
        pushed, plain = audit_both(lakehouse, lakehouse, gx_dir, "agg.bad", checkpoint)
        assert pushed.row_metrics == "pandas"
        assert results(pushed) == results(plain)


def test_suite_check_no_longer_names_these_rules() -> None:
    rules = [
        r.configuration
        for r in aggregate_expectations() + distinct_expectations()
        if r.column not in ("none_s", "none_i", "none_f")
    ]
    schema = agg_table(20, bad=False).schema
    assert rules_sent_to_pandas(rules, schema, {"result_format": "SUMMARY"}) == []
    assert rules_sent_to_pandas(rules, None, {"result_format": "SUMMARY"}) == []
    stdev = gxe.ExpectColumnStdevToBeBetween(column="f", min_value=0, max_value=1).configuration
    assert rules_sent_to_pandas([stdev], schema, {"result_format": "SUMMARY"}) == [
        "expect_column_stdev_to_be_between (f)"
    ]


def test_an_int_mean_is_pushed_down_only_while_its_float_sum_is_exact(tmp_path: Path) -> None:
    """numpy sums an int column as doubles for its mean: exact while rows * max|value| < 2**53 (footer min/max)."""
    from flows.audit.pushdown import ParquetTableMetrics, unanswered

    rules = [
        gxe.ExpectColumnMeanToBeBetween(column="x", min_value=0, max_value=1).configuration,
        gxe.ExpectColumnSumToBeBetween(column="x", min_value=0, max_value=1).configuration,
    ]
    decided = {}
    for largest in (2**40, 2**52):
        path = tmp_path / f"{largest}.parquet"
        pq.write_table(pa.table({"x": pa.array([1, largest, 3, 4], pa.int64())}), path)
        client = connect("local", tmp_path / f"lakehouse{largest}")
        client.create_table("ints", str(path), branch=MAIN, namespace=NAMESPACE)
        client.import_data("ints", str(path), branch=MAIN, namespace=NAMESPACE)
        schema, files = client.data_files("ints", ref=MAIN, namespace=NAMESPACE)
        source = ParquetTableMetrics(files, schema)
        decided[largest] = unanswered(source, rules, {"result_format": "SUMMARY"})[0]
    # The sum of an int64 column without nulls is int64 in pandas (it wraps as the exact sum modulo 2**64 does).
    assert decided == {2**40: [], 2**52: ["expect_column_mean_to_be_between (x)"]}
