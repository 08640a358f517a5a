"""Uniqueness in the pushdown: a passing column is decided by a distinct count in the one aggregate pass, and only a
column that repeats a value is grouped (the rows holding a repeat are what GX counts). Results as GX on pandas.

Grouping the column with counts cost 1.4x DuckDB's own count(DISTINCT) on 30M ids (bench_100m.py), on every
audit, although a passing column has no repeated value to count.
"""

from __future__ import annotations

from pathlib import Path

import great_expectations.expectations as gxe
import pytest
from test_audit_pushdown import NAMESPACE, audit_both, gx_dir, lakehouse, make_checkpoint, results_json  # noqa: F401

from flows.audit import pushdown


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    rows = pushdown.ParquetTableMetrics._rows

    def spy(self, sql, params):
        seen.append(sql)
        return rows(self, sql, params)

    monkeypatch.setattr(pushdown.ParquetTableMetrics, "_rows", spy)
    return seen


@pytest.mark.parametrize("branch", ["edge.good", "edge.bad"])
def test_a_column_is_grouped_only_when_it_repeats_a_value(
    lakehouse,  # noqa: F811
    gx_dir: Path,  # noqa: F811
    queries: list[str],
    branch: str,
) -> None:
    checkpoint = make_checkpoint(
        gx_dir,
        "edge_unique",
        [gxe.ExpectColumnValuesToBeUnique(column="id"), gxe.ExpectColumnValuesToBeUnique(column="name")],
    )
    pushed, plain = audit_both(lakehouse, gx_dir, branch, checkpoint)
    assert results_json(pushed) == results_json(plain)
    grouped = [q for q in queries if "GROUP BY" in q]
    assert any("count(DISTINCT" in q for q in queries)
    # `name` repeats on both branches, `id` on the bad one only: each repeating column grouped once, for its count.
    repeating = {"edge.good": ['"name"'], "edge.bad": ['"id"', '"name"']}[branch]
    assert sorted(c for c in ('"id"', '"name"') if any(f"GROUP BY {c}" in q for q in grouped)) == repeating
    failed = {e.column: e.unexpected_count for e in pushed.failed}
    assert failed["name"] == 3000 and ("id" in failed) == (branch == "edge.bad")
