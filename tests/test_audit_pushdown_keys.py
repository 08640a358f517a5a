"""Row keys in the pushdown: with ``unexpected_index_column_names`` in the result format (a dataset's key), GX's
``unexpected_index_list`` names each failing row by its key columns, and the pushdown answers it as GX on pandas
does (one dict per row: the checked column, then each key column, values as the full frame holds them), and
``unexpected_index_query`` (``df.filter(items=[...], axis=0)``, every unexpected row) when it is asked for.

Each case audits the three-file edge table of ``test_audit_pushdown`` twice (pushdown, then GX on pandas) and
compares every expectation's full result JSON; the pushdown must have answered (``row_metrics == "duckdb"``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_audit_pushdown import (  # noqa: F401
    NAMESPACE,
    WEIRD,
    audit_both,
    edge_expectations,
    gx_dir,
    lakehouse,
    make_checkpoint,
    results_json,
)
from test_audit_pushdown_query import audit_both as audit_both_query
from test_audit_pushdown_query import edge_expectations as query_expectations
from test_audit_pushdown_query import gx_dir as query_gx_dir  # noqa: F401
from test_audit_pushdown_query import local, remote  # noqa: F401
from test_audit_pushdown_query import results_json as query_results_json

KEYED = {
    # id has nulls on the bad branch (float64 keys there), the name column strings with quotes.
    "summary_by_id": {"result_format": "SUMMARY", "unexpected_index_column_names": ["id"]},
    "basic_by_two": {"result_format": "BASIC", "unexpected_index_column_names": [WEIRD, "name"]},
    "summary_with_query": {
        "result_format": "SUMMARY",
        "unexpected_index_column_names": ["name", "id"],
        "return_unexpected_index_query": True,
        "partial_unexpected_count": 7,
    },
}


@pytest.mark.parametrize("case", sorted(KEYED))
@pytest.mark.parametrize("branch", ["edge.good", "edge.bad", "edge.empty"])
def test_keyed_results_equal_gx_on_pandas(lakehouse, gx_dir: Path, branch: str, case: str) -> None:  # noqa: F811
    checkpoint = make_checkpoint(gx_dir, f"edge_keys_{case}", edge_expectations(), KEYED[case])
    pushed, plain = audit_both(lakehouse, gx_dir, branch, checkpoint)
    assert pushed.row_metrics == "duckdb" and plain.row_metrics == "pandas"
    assert results_json(pushed) == results_json(plain)
    if branch == "edge.bad" and KEYED[case]["result_format"] == "SUMMARY":  # BASIC reports no row samples
        unique = next(e for e in pushed.failed if e.expectation_type == "expect_column_values_to_be_unique")
        rows = unique.partial_unexpected_index_list
        assert rows and all(isinstance(r, dict) and "id" in r for r in rows)
        keys = KEYED[case]["unexpected_index_column_names"]
        assert all(list(r) == ["id", *(k for k in keys if k != "id")] for r in rows)


def test_keyed_results_on_the_query_path(remote, local, query_gx_dir: Path) -> None:  # noqa: F811
    keyed = {"result_format": "SUMMARY", "unexpected_index_column_names": ["id", "name"]}
    checkpoint = make_checkpoint(query_gx_dir, "edge_keys_query", query_expectations(), keyed)
    for branch in ("edge.bad", "edge.good"):
        pushed, plain = audit_both_query(remote, local, query_gx_dir, branch, checkpoint)
        assert pushed.row_metrics == "query"
        assert query_results_json(pushed) == query_results_json(plain)


def test_a_key_column_the_table_lacks_goes_to_pandas(lakehouse, gx_dir: Path) -> None:  # noqa: F811
    keyed = {"result_format": "SUMMARY", "unexpected_index_column_names": ["no_such_key"]}
    checkpoint = make_checkpoint(gx_dir, "edge_keys_missing", edge_expectations()[:5], keyed)
    pushed, plain = audit_both(lakehouse, gx_dir, "edge.bad", checkpoint)
    assert pushed.row_metrics == "pandas"
    assert [r.success for r in pushed.validation_result.results] == [r.success for r in plain.validation_result.results]
