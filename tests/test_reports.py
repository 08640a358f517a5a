"""The report renderers (`flows.reports.markdown`) on their own: markdown verdict and expectation rows,
no Prefect server, no GX run.

The gate tests read these reports back from a real Prefect server; here each outcome the gate can end in
(published, blocked by the audit, errored before or after the audit) is rendered directly from the
gate's own result types, so a wording or ordering change shows up in the fast tier.
"""

from __future__ import annotations

from flows.audit.checkpoint import AuditResult, ExpectationOutcome
from flows.gate.outcome import GateOutcome
from flows.reports import artifact_key
from flows.reports.markdown import MAX_CELL, MAX_SAMPLES, expectation_rows, render_markdown

NOT_NULL = ExpectationOutcome(
    "expect_column_values_to_not_be_null",
    "PassengerId",
    {},
    True,
    unexpected_count=0,
    unexpected_percent=0.0,
    description="PassengerId values must never be null.",
)
IN_SET = ExpectationOutcome(
    "expect_column_values_to_be_in_set",
    "Sex",
    {"value_set": ["male", "female"], "mostly": 0.99},
    False,
    unexpected_count=3,
    unexpected_percent=0.3367,
    partial_unexpected_list=["M", "F", "M", "x|y"],
    description="Sex values must belong to this set: male female.",
)
MISSING_COLUMN = ExpectationOutcome(
    "expect_column_values_to_be_between",
    "Agee",
    {"min_value": 0},
    False,
    exception_message='Error: The column "Agee" in BatchData does not exist.',
    description="Agee values must be greater than or equal to 0.",
)


def audit(*expectations: ExpectationOutcome, data_docs_url: str | None = None) -> AuditResult:
    n = len(expectations)
    passed = sum(e.success for e in expectations)
    return AuditResult(
        success=passed == n,
        suite_name="titanic_suite",
        checkpoint_name="titanic_checkpoint",
        run_id="nightly@2026-01-01T00:00:00Z",
        run_time="2026-01-01T00:00:00Z",
        gx_version="1.24.0",
        statistics={
            "evaluated": n,
            "successful": passed,
            "unsuccessful": n - passed,
            "success_percent": 100 * passed / n,
        },
        expectations=list(expectations),
        data_docs_url=data_docs_url,
        row_metrics="duckdb",
    )


def outcome(result: AuditResult | None, *, published: str | None, rows: int | None = 891) -> GateOutcome:
    return GateOutcome(
        dataset="titanic",
        branch="wap_titanic_0001",
        source="data/titanic.csv",
        rows=rows,
        audited_commit="c0ffee" if result is not None else None,
        published_commit=published,
        audit=result,
    )


def section(markdown: str, title: str) -> list[str]:
    """The lines of one `## title` section (up to the next heading)."""
    lines = markdown.splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return [line for line in lines[start:end] if line]


def test_passed_outcome_says_published_with_commit_and_no_failures() -> None:
    md = render_markdown(outcome(audit(NOT_NULL), published="c0ffee"))

    assert md.splitlines()[0] == "# titanic: PUBLISHED"
    assert "**All 1 expectations passed**: 891 rows published to `main`." in md
    assert "## Failed expectations" not in md and "**Error**" not in md
    run = section(md, "Run")
    assert "- **Published commit**: `c0ffee`" in run
    assert "- **Branch**: `wap_titanic_0001`" in run
    assert "- **Rows written**: 891" in run
    assert "- **Expectations**: 1 evaluated, 1 passed, 0 failed (100.00% success)" in run
    assert "- **Data docs**: not built" in run
    assert any(line.startswith("- **Row metrics**: computed by DuckDB") for line in run)
    assert section(md, "All expectations")[2:] == ["| pass | PassengerId values must never be null. | 0 unexpected |"]


def test_blocked_outcome_lists_each_failure_with_samples_and_keeps_main_unchanged() -> None:
    md = render_markdown(outcome(audit(NOT_NULL, IN_SET, MISSING_COLUMN), published=None))

    assert md.splitlines()[0] == "# titanic: BLOCKED by the audit"
    assert "**2 of 3 expectations failed**: nothing was published, `main` is unchanged." in md
    assert section(md, "Failed expectations") == [
        "- **Sex values must belong to this set: male female.** Found **3 unexpected values** (0.34% of non-null"
        " rows), e.g. `M`, `F`, `x|y`. (`expect_column_values_to_be_in_set` on column `Sex`)",
        '- **Agee values must be greater than or equal to 0.** Could not be evaluated: Error: The column "Agee" in'
        " BatchData does not exist. (`expect_column_values_to_be_between` on column `Agee`)",
    ]
    assert "- **Published commit**: blocked" in section(md, "Run")
    # The overview table: failed first, long phrases shortened, an expectation that could not run is an error.
    assert section(md, "All expectations")[2:] == [
        "| **FAIL** | Sex values must belong to this set: male female. | 3 unexpected (0.34%) |",
        "| **FAIL** | Agee values must be ≥ 0. | **error** |",
        "| pass | PassengerId values must never be null. | 0 unexpected |",
    ]
    assert "**Error**" not in md  # the failures explain the verdict; no separate error line


def test_errored_before_the_audit_names_the_error_and_has_no_audit_sections() -> None:
    md = render_markdown(outcome(None, published=None, rows=None), RuntimeError("source vanished"))

    assert md.splitlines()[0] == "# titanic: NOT PUBLISHED"
    assert "The gate stopped before the audit: nothing was published, `main` is unchanged." in md
    assert "**Error**: RuntimeError: source vanished" in md
    assert "## All expectations" not in md and "## Failed expectations" not in md
    run = section(md, "Run")
    assert "- **Published commit**: blocked" in run
    assert not any(line.startswith(("- **Rows written**", "- **Suite**")) for line in run)


def test_errored_after_a_passing_audit_says_publishing_failed() -> None:
    md = render_markdown(outcome(audit(NOT_NULL), published=None), OSError("catalog is read-only"))

    assert md.splitlines()[0] == "# titanic: NOT PUBLISHED"
    assert "All 1 expectations passed, but publishing failed: `main` is unchanged." in md
    assert "**Error**: OSError: catalog is read-only" in md


def test_markdown_shows_markup_in_gx_sentences_instead_of_applying_it() -> None:
    regex = ExpectationOutcome(
        "expect_column_values_to_match_regex",
        "Name",
        {"regex": "^[A-Z]_*"},
        False,
        unexpected_count=1,
        unexpected_percent=0.1,
        partial_unexpected_list=["a`b"],
        description="Name values must match this regular expression: ^[A-Z]_*.",
    )
    md = render_markdown(outcome(audit(regex), published=None))

    assert r"match this regular expression: ^\[A-Z\]\_\*." in md
    assert "e.g. ``a`b``" in md  # a backtick in a value gets a longer fence, not a broken code span


def test_null_samples_report_row_positions_and_schema_mismatch_names_the_columns() -> None:
    nulls = ExpectationOutcome(
        "expect_column_values_to_not_be_null",
        "Age",
        {},
        False,
        unexpected_count=2,
        unexpected_percent=0.22,
        partial_unexpected_list=[None, float("nan")],
        partial_unexpected_index_list=[5, 17],
        description="Age values must never be null.",
    )
    columns = ExpectationOutcome(
        "expect_table_columns_to_match_set",
        None,
        {"column_set": ["A", "B"]},
        False,
        observed_value=["A", "C"],
        details={"mismatched": {"unexpected": ["C"], "missing": ["B"]}},
        description="Must have these columns in any order: A, B.",
    )
    failed = section(render_markdown(outcome(audit(nulls, columns), published=None)), "Failed expectations")

    assert failed[0].startswith("- **Age values must never be null.** Found **2 null values** (0.22% of rows)")
    assert "e.g. at rows 5, 17." in failed[0]
    assert "Unexpected columns: `C`; Missing columns: `B`." in failed[1]
    assert "on column" not in failed[1]  # a table expectation has no column


def test_expectation_rows_put_failures_first_and_keep_cells_short() -> None:
    long_value = "v" * (MAX_CELL + 50)
    many = ExpectationOutcome(
        "expect_column_values_to_be_in_set",
        "Embarked",
        {"value_set": ["S", "C", "Q"]},
        False,
        unexpected_count=9,
        unexpected_percent=1.0101,
        partial_unexpected_list=[f"x{i}" for i in range(MAX_SAMPLES + 3)],
    )
    rows = expectation_rows(audit(NOT_NULL, IN_SET, MISSING_COLUMN, many, data_docs_url="file:///docs/index.html"))

    assert [r["status"] for r in rows] == ["FAIL", "FAIL", "FAIL", "pass"]
    assert [r["column"] for r in rows] == ["Sex", "Agee", "Embarked", "PassengerId"]
    sex, agee, embarked, passenger = rows
    assert sex["arguments"] == '{"value_set": ["male", "female"], "mostly": 0.99}'
    assert sex["mostly"] == 0.99 and passenger["mostly"] == ""
    assert sex["unexpected"] == 3 and sex["percent"] == "0.34%"
    assert sex["sample"] == '["M", "F", "M", "x\\|y"]'  # a pipe would split the table cell
    assert agee["observed"] == 'Error: The column "Agee" in BatchData d…'  # cut: the markdown has it whole
    assert agee["unexpected"] == "" and agee["percent"] == ""
    assert embarked["rule"] == "expect_column_values_to_be_in_set"  # no GX sentence: the type
    assert embarked["sample"] == '["x0", "x1", "x2", "x3", "x4"]'
    # What a reader scans for first, in the artifact's column order.
    assert passenger["sample"] == ""  # no unexpected values: an empty cell, not []
    assert list(sex)[:6] == ["status", "column", "rule", "unexpected", "percent", "sample"]

    wide = ExpectationOutcome("expect_column_values_to_be_in_set", "Cabin", {"value_set": [long_value]}, True)
    (row,) = expectation_rows(audit(wide))
    assert len(row["arguments"]) == MAX_CELL and row["arguments"].endswith("…")


def test_artifact_keys_are_valid_prefect_keys() -> None:
    assert artifact_key("Titanic_Clean", "validation") == "titanic-clean-validation"


def test_a_batch_that_does_not_fit_the_table_is_blocked_by_the_schema_check_column_by_column() -> None:
    from flows.lakehouse import SchemaMismatchError

    error = SchemaMismatchError(
        "source b.parquet does not fit table titanic: ...",
        table="titanic",
        missing=[("Cabin", "string")],
        extra=[("Deck", "string")],
        retyped=[("Survived", "string", "long")],
    )
    appended = outcome(None, published=None, rows=None)
    appended.mode = "append"
    md = render_markdown(appended, error)

    assert md.splitlines()[0] == "# titanic: BLOCKED by the schema check"
    assert "no row was written, nothing was published, `main` is unchanged" in md
    assert section(md, "Schema against `main`") == [
        "- `Cabin`: missing from the source (`string` in the table)",
        "- `Deck`: not in the table (`string` in the source)",
        "- `Survived`: retyped: `string` in the source, `long` in the table",
    ]
    assert "**Error**" not in md  # said column by column instead
    assert "- **Mode**: append" in section(md, "Run")
