"""Every expectation type GX 1.24 ships (the types `wap suite check` accepts: GX's registry) goes through the real
audit, passing and failing, and renders without a traceback (issue 15 item 7).

One checkpoint run validates them all: the titanic batch suite holds each type with arguments that pass on the
generated titanic table, its table suite the same types with arguments that fail. Asserted for each type: the
verdict, no traceback and no GX error in the logs, stdout or stderr (GX logs its data docs render errors with a
traceback: `expect_column_distinct_values_to_be_in_set`'s KeyError 'unexpected_percent'), a description (GX's
sentence, or a plain one where GX has none), and a Result cell in the markdown report that says what was observed
(never "1 unexpected ()"). Then `wap validate` on the same suites, in-process, prints no traceback either.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from flows.audit import AuditResult, ExpectationOutcome, run_checkpoint, table_to_dataframe
from flows.demo.data import generate_titanic, write_csv
from flows.reports import describe_failures
from flows.reports.findings import finding
from flows.reports.markdown import _result, render_markdown
from flows.reports.text import describe_finding
from tests.cli_runner import run_cli

# One worker runs the module (`--dist loadgroup`): the catalogue's audit, a module fixture, is built once (~10 s).
# The string row conditions (the form suites in JSON use) are deprecated in GX 1.9+: 400 warnings of noise.
pytestmark = [
    pytest.mark.xdist_group("every_expectation_type"),
    pytest.mark.filterwarnings("ignore:.*(row_condition|condition_parser).*:DeprecationWarning"),
]

REPO_GX = Path(__file__).resolve().parents[1] / "gx"
ROWS = 200  # generate_titanic(200, seed=0): 145 S, 40 C, 15 Q embarked; 43 null ages; max age 66; mean fare 26.8
COLUMNS = ["PassengerId", "Survived", "Pclass", "Name", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin"]
COLUMNS += ["Embarked"]
DIGIT_TICKETS = {"row_condition": "Ticket.str.isdigit()", "condition_parser": "pandas"}  # JSON numbers
FIRST_ROW = {"row_condition": "PassengerId == 1", "condition_parser": "pandas"}  # one row: trivially decreasing

# type: (kwargs that pass on the table, kwargs that fail). Hand-written: GX's models say which arguments a type
# takes, not which values pass on titanic.
CATALOGUE: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "expect_column_distinct_values_to_be_in_set": (
        {"column": "Embarked", "value_set": ["S", "C", "Q"]},
        {"column": "Embarked", "value_set": ["S", "C"]},
    ),
    "expect_column_distinct_values_to_contain_set": (
        {"column": "Embarked", "value_set": ["S", "C"]},
        {"column": "Embarked", "value_set": ["S", "X"]},
    ),
    "expect_column_distinct_values_to_equal_set": (
        {"column": "Embarked", "value_set": ["S", "C", "Q"]},
        {"column": "Embarked", "value_set": ["S", "C"]},
    ),
    "expect_column_kl_divergence_to_be_less_than": (
        {"column": "Pclass", "partition_object": {"values": [1, 2, 3], "weights": [0.25, 0.2, 0.55]}, "threshold": 0.6},
        {"column": "Pclass", "partition_object": {"values": [1, 2, 3], "weights": [0.9, 0.05, 0.05]}, "threshold": 0.1},
    ),
    "expect_column_max_to_be_between": (
        {"column": "Age", "min_value": 0, "max_value": 100},
        {"column": "Age", "min_value": 0, "max_value": 10},
    ),
    "expect_column_mean_to_be_between": (
        {"column": "Fare", "min_value": 0, "max_value": 100},
        {"column": "Fare", "min_value": 100, "max_value": 200},
    ),
    "expect_column_median_to_be_between": (
        {"column": "Age", "min_value": 0, "max_value": 100},
        {"column": "Age", "min_value": 50, "max_value": 60},
    ),
    "expect_column_min_to_be_between": (
        {"column": "Age", "min_value": 0, "max_value": 100},
        {"column": "Age", "min_value": 10, "max_value": 20},
    ),
    "expect_column_most_common_value_to_be_in_set": (
        {"column": "Embarked", "value_set": ["S"]},
        {"column": "Embarked", "value_set": ["C"]},
    ),
    "expect_column_pair_values_a_to_be_greater_than_b": (
        {"column_A": "Pclass", "column_B": "Survived", "or_equal": True},
        {"column_A": "Survived", "column_B": "Pclass"},
    ),
    "expect_column_pair_values_to_be_equal": (
        {"column_A": "Survived", "column_B": "Survived"},
        {"column_A": "Survived", "column_B": "Pclass"},
    ),
    "expect_column_pair_values_to_be_in_set": (
        {"column_A": "Survived", "column_B": "Pclass", "value_pairs_set": [[a, b] for a in (0, 1) for b in (1, 2, 3)]},
        {"column_A": "Survived", "column_B": "Pclass", "value_pairs_set": [[0, 3]]},
    ),
    "expect_column_proportion_of_non_null_values_to_be_between": (
        {"column": "Age", "min_value": 0.5, "max_value": 1},
        {"column": "Age", "min_value": 0.99},
    ),
    "expect_column_proportion_of_unique_values_to_be_between": (
        {"column": "PassengerId", "min_value": 1, "max_value": 1},
        {"column": "Survived", "min_value": 0.5},
    ),
    "expect_column_quantile_values_to_be_between": (
        {"column": "Age", "quantile_ranges": {"quantiles": [0.5], "value_ranges": [[0, 100]]}},
        {"column": "Age", "quantile_ranges": {"quantiles": [0.5], "value_ranges": [[90, 100]]}},
    ),
    "expect_column_stdev_to_be_between": (
        {"column": "Fare", "min_value": 0, "max_value": 100},
        {"column": "Fare", "min_value": 0, "max_value": 1},
    ),
    "expect_column_sum_to_be_between": (
        {"column": "Parch", "min_value": 0, "max_value": 1000},
        {"column": "Parch", "min_value": 0, "max_value": 1},
    ),
    "expect_column_to_exist": ({"column": "Name"}, {"column": "Nickname"}),
    "expect_column_type_to_be": (
        {"column": "PassengerId", "type_": "int64"},
        {"column": "PassengerId", "type_": "str"},
    ),
    "expect_column_unique_value_count_to_be_between": (
        {"column": "Embarked", "min_value": 1, "max_value": 5},
        {"column": "Embarked", "min_value": 5, "max_value": 10},
    ),
    "expect_column_value_lengths_to_be_between": (
        {"column": "Ticket", "min_value": 1, "max_value": 20},
        {"column": "Ticket", "min_value": 1, "max_value": 6},
    ),
    "expect_column_value_lengths_to_equal": ({"column": "Embarked", "value": 1}, {"column": "Sex", "value": 4}),
    "expect_column_value_z_scores_to_be_less_than": (
        {"column": "Age", "threshold": 10, "double_sided": True},
        {"column": "Fare", "threshold": 1, "double_sided": True},
    ),
    "expect_column_values_to_be_between": (
        {"column": "Age", "min_value": 0, "max_value": 100},
        {"column": "Age", "min_value": 0, "max_value": 10},
    ),
    # No titanic column holds dates: one ticket in 200 parses.
    "expect_column_values_to_be_dateutil_parseable": ({"column": "Ticket", "mostly": 0.001}, {"column": "Name"}),
    "expect_column_values_to_be_decreasing": ({"column": "PassengerId", **FIRST_ROW}, {"column": "PassengerId"}),
    "expect_column_values_to_be_in_set": (
        {"column": "Embarked", "value_set": ["S", "C", "Q"]},
        {"column": "Embarked", "value_set": ["S"]},
    ),
    "expect_column_values_to_be_in_type_list": (
        {"column": "Age", "type_list": ["float64"]},
        {"column": "Age", "type_list": ["int64"]},
    ),
    "expect_column_values_to_be_increasing": ({"column": "PassengerId"}, {"column": "Fare"}),
    "expect_column_values_to_be_json_parseable": ({"column": "Ticket", **DIGIT_TICKETS}, {"column": "Name"}),
    "expect_column_values_to_be_null": ({"column": "Age", "mostly": 0.2}, {"column": "Name"}),
    "expect_column_values_to_be_of_type": ({"column": "Age", "type_": "float64"}, {"column": "Age", "type_": "int64"}),
    "expect_column_values_to_be_unique": ({"column": "PassengerId"}, {"column": "Survived"}),
    "expect_column_values_to_match_json_schema": (
        {"column": "Ticket", "json_schema": {"type": "integer"}, **DIGIT_TICKETS},
        {"column": "Ticket", "json_schema": {"type": "string"}, **DIGIT_TICKETS},
    ),
    "expect_column_values_to_match_regex": ({"column": "Name", "regex": ","}, {"column": "Name", "regex": "^Z"}),
    "expect_column_values_to_match_regex_list": (
        {"column": "Name", "regex_list": [",", "\\."]},
        {"column": "Name", "regex_list": ["^Z"]},
    ),
    "expect_column_values_to_match_strftime_format": (
        {"column": "Sex", "strftime_format": "male", "row_condition": 'Sex == "male"', "condition_parser": "pandas"},
        {"column": "Sex", "strftime_format": "%Y"},
    ),
    "expect_column_values_to_not_be_in_set": (
        {"column": "Embarked", "value_set": ["X"]},
        {"column": "Embarked", "value_set": ["S"]},
    ),
    "expect_column_values_to_not_be_null": ({"column": "PassengerId"}, {"column": "Age"}),
    "expect_column_values_to_not_be_outliers": ({"column": "Age"}, {"column": "Fare"}),
    "expect_column_values_to_not_match_regex": (
        {"column": "Name", "regex": "^\\d+$"},
        {"column": "Name", "regex": ","},
    ),
    "expect_column_values_to_not_match_regex_list": (
        {"column": "Name", "regex_list": ["^\\d+$"]},
        {"column": "Name", "regex_list": [","]},
    ),
    "expect_compound_columns_to_be_unique": (
        {"column_list": ["PassengerId", "Name"]},
        {"column_list": ["Survived", "Pclass"]},
    ),
    "expect_multicolumn_sum_to_equal": (
        {"column_list": ["Survived", "Parch"], "sum_total": 0, "mostly": 0.4},
        {"column_list": ["Survived", "Parch"], "sum_total": 100},
    ),
    "expect_multicolumn_values_to_be_equal": (
        {"column_list": ["Survived", "Parch"], "mostly": 0.3},
        {"column_list": ["Pclass", "Survived"]},
    ),
    "expect_select_column_values_to_be_unique_within_record": (
        {"column_list": ["Name", "Ticket"]},
        {"column_list": ["SibSp", "Parch"]},
    ),
    "expect_table_column_count_to_be_between": ({"min_value": 1, "max_value": 20}, {"min_value": 20, "max_value": 30}),
    "expect_table_column_count_to_equal": ({"value": 12}, {"value": 13}),
    "expect_table_columns_to_match_ordered_list": ({"column_list": COLUMNS}, {"column_list": COLUMNS[::-1]}),
    "expect_table_columns_to_match_set": ({"column_set": COLUMNS}, {"column_set": COLUMNS[:-1]}),
    "expect_table_row_count_to_be_between": (
        {"min_value": 1, "max_value": 1000},
        {"min_value": 1000, "max_value": 2000},
    ),
    "expect_table_row_count_to_equal": ({"value": ROWS}, {"value": ROWS + 1}),
}
# Types GX cannot run on a pandas batch (the gate's audits are pandas, or SQL pushed down for the row metrics GX
# computes on pandas too): in the failing suite only, where each must say it could not run, still without a
# traceback and with a description.
CANNOT_RUN: dict[str, tuple[dict[str, Any], str]] = {
    "expect_column_values_to_match_like_pattern": ({"column": "Name", "like_pattern": "%,%"}, "SQL LIKE: no pandas"),
    "expect_column_values_to_match_like_pattern_list": (
        {"column": "Name", "like_pattern_list": ["%,%"]},
        "SQL LIKE: no pandas implementation",
    ),
    "expect_column_values_to_not_match_like_pattern": (
        {"column": "Name", "like_pattern": "%[0-9]%"},
        "SQL LIKE: no pandas implementation",
    ),
    "expect_column_values_to_not_match_like_pattern_list": (
        {"column": "Name", "like_pattern_list": ["%[0-9]%"]},
        "SQL LIKE: no pandas implementation",
    ),
    "expect_table_row_count_to_equal_other_table": (
        {"other_table_name": "titanic"},
        "needs a second named table: PandasExecutionEngine has one",
    ),
    "expect_query_results_to_match_comparison": (
        {
            "base_query": "SELECT COUNT(*) FROM {batch}",
            "comparison_data_source_name": "x",
            "comparison_query": "SELECT 1",
        },
        "SQL queries against two data sources",
    ),
    "unexpected_rows_expectation": (
        {"unexpected_rows_query": "SELECT * FROM {batch} WHERE Age < 0"},
        "SQL: the gate runs it only as a group's cross-table rule",
    ),
}
# GX 1.24 bugs that break the audit itself, not only its rendering, kept out of the catalogue run. None now:
# expect_column_quantile_values_to_be_between's np.bool_ success is made a bool by flows/audit/gx_fixes.py
# (test_quantile_values_audit_instead_of_breaking_the_checkpoint).
BROKEN: dict[str, str] = {}
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|Traceback: ")
# "1 unexpected ()": a count of values without a share of rows, formatted as if it had one.
EMPTY_SHARE = re.compile(r"^\d+ unexpected \(\)$")


def registered_types() -> list[str]:
    """What `wap suite check` accepts (flows/suite/check.py: GX's expectation registry)."""
    from flows.suite.check import _registry

    return _registry()[1]


def _suite(gx_dir: Path, name: str, expectations: list[tuple[str, dict[str, Any]]]) -> None:
    path = gx_dir / "expectations" / f"{name}.json"
    suite = json.loads(path.read_text())
    suite["expectations"] = [{"type": t, "kwargs": kw, "meta": {}, "severity": "critical"} for t, kw in expectations]
    path.write_text(json.dumps(suite, indent=2))


def catalogue_project(target: Path, types: list[str]) -> Path:
    """A copy of gx/ whose titanic suites hold ``types``: the batch suite's pass, the table suite's fail."""
    shutil.copytree(REPO_GX, target, ignore=shutil.ignore_patterns("uncommitted"))
    _suite(target, "titanic", [(t, CATALOGUE[t][0]) for t in types if t in CATALOGUE])
    failing = [(t, CATALOGUE[t][1]) for t in types if t in CATALOGUE]
    _suite(target, "titanic_table", failing + [(t, CANNOT_RUN[t][0]) for t in types if t in CANNOT_RUN])
    return target


def _no_traceback(caplog: pytest.LogCaptureFixture, *texts: str) -> None:
    logged = [r for r in caplog.records if TRACEBACK.search(r.getMessage()) or r.exc_info]
    assert not logged, f"a traceback was logged by {logged[0].name}: {logged[0].getMessage()[:600]}"
    errors = [r for r in caplog.records if r.name.startswith("great_expectations") and r.levelno >= logging.ERROR]
    assert not errors, f"GX logged an error: {errors[0].getMessage()[:600]}"
    for text in texts:
        assert not TRACEBACK.search(text), text[:2000]


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditResult, list[logging.LogRecord], str]:
    """One audit of every type: the result, what was logged (every level) and what was printed."""
    types = [t for t in registered_types() if t not in BROKEN]
    gx_dir = catalogue_project(tmp_path_factory.mktemp("catalogue") / "gx", types)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep, root = Keep(logging.DEBUG), logging.getLogger()
    level = root.level
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    try:
        frame = table_to_dataframe(generate_titanic(ROWS, seed=0))
        result = run_checkpoint(frame, "titanic", gx_dir=gx_dir, run_name="every-type")
    finally:
        root.removeHandler(keep)
        root.setLevel(level)
    return result, records, render_markdown(_gate_run(result))


def _gate_run(result: AuditResult) -> Any:
    from flows.gate.outcome import GateOutcome

    return GateOutcome(
        dataset="titanic", branch="wap_titanic_0001", source="titanic.csv", rows=ROWS, audited_commit="c0ffee",
        published_commit=None, audit=result,
    )  # fmt: skip


def test_the_catalogue_covers_every_registered_type() -> None:
    """A type GX adds (a GX upgrade) must get a row here, or a reason why it cannot run."""
    covered = set(CATALOGUE) | set(CANNOT_RUN)
    assert set(registered_types()) == covered, set(registered_types()) ^ covered
    assert set(BROKEN) <= set(CATALOGUE)


def test_the_audit_logs_no_traceback(audited: tuple[AuditResult, list[logging.LogRecord], str]) -> None:
    result, records, _ = audited
    traced = [r for r in records if TRACEBACK.search(r.getMessage()) or r.exc_info]
    assert not traced, f"{traced[0].name} logged a traceback: {traced[0].getMessage()[:800]}"
    errors = [r for r in records if r.name.startswith("great_expectations") and r.levelno >= logging.ERROR]
    assert not errors, f"GX logged an error: {errors[0].getMessage()[:800]}"
    assert result.data_docs_url  # the data docs were built, GX's render errors and all
    assert len(result.expectations) == 2 * (len(CATALOGUE) - len(BROKEN)) + len(CANNOT_RUN)


def _outcomes(result: AuditResult, kind: str) -> dict[str, ExpectationOutcome]:
    found = {e.suite: e for e in result.expectations if e.expectation_type == kind}
    return found


@pytest.mark.parametrize("kind", sorted(set(CATALOGUE) | set(CANNOT_RUN)))
def test_each_type_is_judged_and_described(
    audited: tuple[AuditResult, list[logging.LogRecord], str], kind: str
) -> None:
    if kind in BROKEN:
        pytest.skip(f"GX 1.24 bug, see test_broken_types_still_break: {BROKEN[kind]}")
    result, _, markdown = audited
    outcomes = _outcomes(result, kind)
    if kind in CANNOT_RUN:
        assert set(outcomes) == {"titanic_table"}
        failing = outcomes["titanic_table"]
        assert failing.exception_message and failing.blocks, failing
        assert _result(failing) == "**error**"
    else:
        passing, failing = outcomes["titanic"], outcomes["titanic_table"]
        assert passing.success, passing
        assert not failing.success and failing.exception_message is None, failing
    for e in outcomes.values():
        # GX's sentence, or the plain fallback: never empty, never GX's "type(**kwargs)" or raw template
        assert e.description and e.description.strip(), e
        assert (
            not re.search(r"\$[a-z_]", e.description)
            and "(**" not in e.description
            and "PassThrough(" not in e.description
        )
        assert "<pre>" not in e.description
        cell = _result(e)
        assert not EMPTY_SHARE.match(cell), (cell, e)
        assert "()" not in cell and "None" not in cell, (cell, e)
        assert f"| {cell} |" in markdown
    said = describe_finding(finding(failing))
    assert "None" not in said.replace(repr(failing.description), ""), said
    if failing.unexpected_percent is None and failing.exception_message is None:  # an aggregate: its observation
        assert _result(failing) not in ("", "failed") or failing.observed_value is None, _result(failing)


def test_distinct_values_outside_the_set_are_named_in_the_result(
    audited: tuple[AuditResult, list[logging.LogRecord], str],
) -> None:
    result, _, markdown = audited
    failing = _outcomes(result, "expect_column_distinct_values_to_be_in_set")["titanic_table"]
    assert failing.unexpected_count == 1 and failing.unexpected_percent is None
    assert _result(failing) == "1 unexpected value: Q"
    most_common = _outcomes(result, "expect_column_most_common_value_to_be_in_set")["titanic_table"]
    assert _result(most_common) == "observed S"
    assert "unexpected ()" not in markdown
    assert "1 unexpected value(s); e.g. 'Q'" in describe_failures(result)


def test_validate_prints_no_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`wap validate` in-process on a CSV, every type in its suites: blocked (exit 1), one line, no traceback."""
    types = [t for t in registered_types() if t not in BROKEN]
    gx_dir = catalogue_project(tmp_path / "gx", types)
    source = write_csv(generate_titanic(ROWS, seed=0), tmp_path / "titanic.csv")
    with caplog.at_level(logging.DEBUG):
        done = run_cli("validate", "titanic", "--source", str(source), env={"WAP_GX_DIR": str(gx_dir)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("blocked: titanic:"), done.stderr
    _no_traceback(caplog, done.stdout, done.stderr)


def test_quantile_values_audit_instead_of_breaking_the_checkpoint(tmp_path: Path) -> None:
    """GX 1.24 answers this rule's success as np.bool_, which its results store cannot write: the checkpoint raised
    TypeError (flows/audit/gx_fixes.py makes it a bool). One passing and one failing rule, each with its verdict."""
    gx_dir = catalogue_project(tmp_path / "gx", ["expect_column_quantile_values_to_be_between"])
    result = run_checkpoint(table_to_dataframe(generate_titanic(ROWS, seed=0)), "titanic", gx_dir=gx_dir)
    assert [e.success for e in result.expectations] == [True, False]
    assert all(type(e.success) is bool for e in result.expectations)
