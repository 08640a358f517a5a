"""The GX audit against the committed titanic suite: passes on good data, blocks every corruption.

Runs the real GX file context (no mocks) on a per-session copy of the repo's ``gx/`` so validation
results and data docs land in a temp dir, not in ``gx/uncommitted``.
"""

from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from flows.audit import (
    AuditConfigError,
    AuditResult,
    get_context,
    run_checkpoint,
    table_to_dataframe,
)
from flows.demo.data import CORRUPTIONS, TITANIC_SCHEMA, corrupt, generate_titanic, write_csv
from flows.reports import describe_failures

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_GX = REPO_ROOT / "gx"
REAL_CSV = Path(__file__).resolve().parents[2] / "shared/data/titanic.csv"

NOT_NULL = "expect_column_values_to_not_be_null"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
OF_TYPE = "expect_column_values_to_be_of_type"
IN_TYPES = "expect_column_values_to_be_in_type_list"
UNIQUE = "expect_column_values_to_be_unique"
COLUMNS = "expect_table_columns_to_match_set"
ROW_COUNT = "expect_table_row_count_to_be_between"

# Exactly which expectations each corruption must trip (type, column). Side effects are listed too:
# a null in an int64 column makes pandas use float64, so the type check fails along with not-null.
EXPECTED_FAILURES: dict[str, set[tuple[str, str | None]]] = {
    "null_passenger_id": {(NOT_NULL, "PassengerId"), (OF_TYPE, "PassengerId")},
    "null_survived": {(NOT_NULL, "Survived"), (OF_TYPE, "Survived")},
    "null_name": {(NOT_NULL, "Name")},
    "age_null_rate": {(NOT_NULL, "Age")},
    "age_out_of_range": {(BETWEEN, "Age")},
    "fare_out_of_range": {(BETWEEN, "Fare")},
    "sibsp_out_of_range": {(BETWEEN, "SibSp")},
    "parch_out_of_range": {(BETWEEN, "Parch")},
    "unknown_sex": {(IN_SET, "Sex")},
    "unknown_embarked": {(IN_SET, "Embarked")},
    "bad_survived": {(IN_SET, "Survived")},
    "bad_pclass": {(IN_SET, "Pclass")},
    # The range check cannot compare text with numbers and errors out, which also counts as a failure.
    "age_as_string": {(IN_TYPES, "Age"), (BETWEEN, "Age")},
    "fare_as_string": {(IN_TYPES, "Fare"), (BETWEEN, "Fare")},
    "pclass_as_float": {(OF_TYPE, "Pclass")},
    "duplicate_ids": {(UNIQUE, "PassengerId")},
    # Expectations on an absent column cannot run; GX reports them as failed with the exception.
    "missing_column": {(COLUMNS, None), (OF_TYPE, "Cabin")},
    "renamed_column": {(COLUMNS, None), (NOT_NULL, "Sex"), (IN_SET, "Sex"), (OF_TYPE, "Sex")},
    "extra_column": {(COLUMNS, None)},
    "empty": {(ROW_COUNT, None)},
}
# In replace mode the table suite sees the same rows: what each corruption trips there (the rest trip nothing).
# Its drift rule compares Fare with main's highest fare, here the table's own (no main): only a negative fare
# or text fails it.
TABLE_EXPECTED_FAILURES: dict[str, set[tuple[str, str | None]]] = {
    "duplicate_ids": {(UNIQUE, "PassengerId")},
    "fare_out_of_range": {(BETWEEN, "Fare")},
    "fare_as_string": {(BETWEEN, "Fare")},
}


@pytest.fixture(scope="session")
def gx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the committed GX project (without uncommitted/), shared by all tests."""
    target = tmp_path_factory.mktemp("gxproject") / "gx"
    shutil.copytree(REPO_GX, target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


@pytest.fixture(scope="session")
def base_table() -> pa.Table:
    return generate_titanic(891, seed=0)


def audit(table: pa.Table, gx_dir: Path, run_name: str | None = None) -> AuditResult:
    return run_checkpoint(table_to_dataframe(table), "titanic", gx_dir=gx_dir, run_name=run_name)


def failed_set(result: AuditResult, suite: str = "titanic") -> set[tuple[str, str | None]]:
    """The failed rules of one suite: the batch suite `titanic` by default."""
    return {(e.expectation_type, e.column) for e in result.failed if e.suite == suite}


def read_like_lakehouse(path: Path) -> pa.Table:
    # Exactly how the lakehouse ingests CSV sources.
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))


# --- the suite accepts good data ---------------------------------------------------------------------


@pytest.mark.parametrize("n_rows", [891, 50_000, pytest.param(200_000, marks=pytest.mark.soak)])
def test_suite_passes_on_generated_data(gx_dir: Path, n_rows: int) -> None:
    result = audit(generate_titanic(n_rows, seed=n_rows), gx_dir)
    assert result.success, describe_failures(result)
    assert result.statistics["unsuccessful"] == 0
    assert result.statistics["evaluated"] == result.statistics["successful"] == len(result.expectations) > 20


@pytest.mark.skipif(not REAL_CSV.is_file(), reason=f"real Titanic CSV not available at {REAL_CSV}")
def test_suite_passes_on_real_titanic(gx_dir: Path) -> None:
    real = read_like_lakehouse(REAL_CSV)
    assert real.schema == TITANIC_SCHEMA  # the generator mimics exactly this
    result = audit(real, gx_dir)
    assert result.success, describe_failures(result)


def test_generated_csv_round_trip_passes(gx_dir: Path, base_table: pa.Table, tmp_path: Path) -> None:
    """Through CSV as the lakehouse would ingest it: types are re-inferred and must still pass."""
    back = read_like_lakehouse(write_csv(base_table, tmp_path / "titanic.csv"))
    assert back.schema == TITANIC_SCHEMA
    assert back.equals(base_table)
    result = audit(back, gx_dir)
    assert result.success, describe_failures(result)


# --- the suite blocks every corruption ---------------------------------------------------------------


def test_every_corruption_has_an_expected_failure() -> None:
    assert set(EXPECTED_FAILURES) == set(CORRUPTIONS)


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corruption_is_blocked_by_the_right_expectation(gx_dir: Path, base_table: pa.Table, kind: str) -> None:
    result = audit(corrupt(base_table, kind), gx_dir, run_name=f"test-{kind}")
    assert not result.success
    assert failed_set(result) == EXPECTED_FAILURES[kind]
    assert failed_set(result, "titanic_table") == TABLE_EXPECTED_FAILURES.get(kind, set())
    batch = result.suite_audit("batch")
    assert batch is not None and batch.statistics["unsuccessful"] == len(EXPECTED_FAILURES[kind])
    table_failures = TABLE_EXPECTED_FAILURES.get(kind, set())
    assert result.statistics["unsuccessful"] == len(EXPECTED_FAILURES[kind]) + len(table_failures)


@pytest.mark.soak
def test_corruptions_are_blocked_at_scale(gx_dir: Path) -> None:
    """Thresholds (mostly, row counts) must not let defects through on big tables either."""
    big = generate_titanic(100_000, seed=7)
    for kind in ("age_null_rate", "age_out_of_range", "duplicate_ids", "unknown_embarked"):
        result = audit(corrupt(big, kind), gx_dir)
        assert failed_set(result) == EXPECTED_FAILURES[kind], kind


# --- what the gate reports -----------------------------------------------------------------------------


def test_outcomes_carry_examples_and_describe_failures_names_them(gx_dir: Path, base_table: pa.Table) -> None:
    result = audit(corrupt(base_table, "age_out_of_range"), gx_dir)
    (age,) = result.failed
    assert age.expectation_type == BETWEEN and age.column == "Age"
    assert age.kwargs == {"min_value": 0.0, "max_value": 100.0}  # no column/batch_id
    assert age.unexpected_count == 4
    assert set(age.partial_unexpected_list) == {-1.0, 150.0, 999.0}
    assert age.notes and "Age" in age.notes
    assert age.description == "Age values must be greater than or equal to 0.0 and less than or equal to 100.0."

    message = describe_failures(result)
    assert "expect_column_values_to_be_between" in message
    assert "'Age'" in message
    assert "150.0" in message and "999.0" in message
    assert "1 of " in message

    sex = describe_failures(audit(corrupt(base_table, "unknown_sex"), gx_dir), max_examples=2)
    assert "'Sex'" in sex and "'M'" in sex and "'F'" in sex and "'unknown'" not in sex


def test_describe_failures_for_nulls_schema_and_errors(gx_dir: Path, base_table: pa.Table) -> None:
    nulls = describe_failures(audit(corrupt(base_table, "null_name"), gx_dir))
    assert "expect_column_values_to_not_be_null on column 'Name'" in nulls
    assert "4 null value(s)" in nulls and "at rows 0," in nulls

    renamed = audit(corrupt(base_table, "renamed_column"), gx_dir)
    message = describe_failures(renamed)
    assert "unexpected columns ['Gender']" in message and "missing columns ['Sex']" in message
    errored = [e for e in renamed.failed if e.column == "Sex"]
    assert errored and all(e.exception_message for e in errored)
    assert "could not be evaluated" in message


def test_result_metadata_and_data_docs(gx_dir: Path, base_table: pa.Table) -> None:
    import great_expectations as gx

    result = audit(base_table, gx_dir, run_name="metadata-check")
    assert result.suite_name == "titanic" and result.checkpoint_name == "titanic"
    assert result.run_id.startswith("metadata-check@")
    assert result.run_time in result.run_id
    assert result.gx_version == gx.__version__
    assert set(result.statistics) == {"evaluated", "successful", "unsuccessful", "success_percent"}
    assert result.statistics["success_percent"] == 100.0
    assert result.validation_result is not None and result.validation_result.success
    assert result.failed == []
    assert describe_failures(result).startswith("Audit passed")

    assert result.data_docs_url and result.data_docs_url.startswith("file://")
    page = Path(unquote(urlparse(result.data_docs_url).path))
    assert page.is_file()
    assert page.is_relative_to(gx_dir / "uncommitted" / "data_docs")
    assert "metadata-check" in page.parts
    json.dumps([e.__dict__ for e in result.expectations], default=str)  # outcomes serialise


def test_run_name_with_path_separators_is_sanitised(gx_dir: Path, base_table: pa.Table) -> None:
    # GX's file stores use the run name as a directory and reject "/" and "\\" in it.
    result = audit(base_table, gx_dir, run_name="team/titanic\\nightly")
    assert result.success and result.run_id.startswith("team_titanic_nightly@")
    assert result.data_docs_url and "team_titanic_nightly" in result.data_docs_url


def test_table_to_dataframe_types(base_table: pa.Table) -> None:
    df = table_to_dataframe(base_table)
    dtypes = {c: str(t) for c, t in df.dtypes.items()}
    assert dtypes["PassengerId"] == "int64" and dtypes["Age"] == "float64" and dtypes["Fare"] == "float64"
    assert dtypes["Name"] in ("str", "object", "string")  # pandas 3: str; pandas 2: object
    assert df["Age"].isna().sum() == base_table.column("Age").null_count


# --- configuration errors and concurrency ---------------------------------------------------------------


def test_unknown_checkpoint_raises_audit_config_error(gx_dir: Path, base_table: pa.Table) -> None:
    with pytest.raises(AuditConfigError, match=r"'no_such_checkpoint'.*available: .*titanic"):
        run_checkpoint(table_to_dataframe(base_table), "no_such_checkpoint", gx_dir=gx_dir)


def test_missing_project_raises_audit_config_error(tmp_path: Path) -> None:
    with pytest.raises(AuditConfigError, match="no Great Expectations project"):
        get_context(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()  # GX did not scaffold an empty project


def test_broken_checkpoint_raises_audit_config_error(tmp_path: Path, base_table: pa.Table) -> None:
    broken = tmp_path / "gx"
    shutil.copytree(REPO_GX, broken, ignore=shutil.ignore_patterns("uncommitted"))
    (broken / "expectations" / "titanic.json").unlink()
    with pytest.raises(AuditConfigError, match="'titanic'.*cannot be loaded"):
        run_checkpoint(table_to_dataframe(base_table), "titanic", gx_dir=broken)


def test_context_is_cached_per_directory(gx_dir: Path) -> None:
    assert get_context(gx_dir) is get_context(str(gx_dir))


@pytest.mark.soak
def test_concurrent_audits_do_not_mix_results(gx_dir: Path, base_table: pa.Table) -> None:
    cases = ["ok", "unknown_sex", "ok", "duplicate_ids", "empty", "ok"]
    tables = {kind: base_table if kind == "ok" else corrupt(base_table, kind) for kind in set(cases)}
    start = threading.Barrier(len(cases))

    def run(i: int) -> AuditResult:
        start.wait()  # maximise overlap
        return audit(tables[cases[i]], gx_dir, run_name=f"concurrent-{i}")

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        results = list(pool.map(run, range(len(cases))))
    for i, (kind, result) in enumerate(zip(cases, results, strict=True)):
        assert result.run_id.startswith(f"concurrent-{i}@")
        if kind == "ok":
            assert result.success, describe_failures(result)
        else:
            assert failed_set(result) == EXPECTED_FAILURES[kind]
    assert len({r.data_docs_url for r in results}) == len(cases)


# --- gx_setup: the stored objects are reproducible -----------------------------------------------------


def test_bootstrap_is_idempotent_and_supports_new_datasets(tmp_path: Path, base_table: pa.Table) -> None:
    """The committed GX objects round-trip through GX's own factories unchanged (ids included), and a new
    dataset's empty suite is refused by the gate rather than passing anything."""
    from gx_helpers import bootstrap_dataset, create_context

    project = tmp_path / "gx"
    shutil.copytree(REPO_GX, project, ignore=shutil.ignore_patterns("uncommitted"))

    def snapshot() -> dict[str, str]:
        return {
            str(p.relative_to(project)): p.read_text()
            for p in sorted(project.rglob("*"))
            if p.is_file() and "uncommitted" not in p.parts
        }

    before = snapshot()
    context = create_context(project)
    bootstrap_dataset(context, "titanic", context.suites.get("titanic"))
    assert snapshot() == before  # regenerating the committed objects changes nothing (ids included)

    bootstrap_dataset(context, "passengers_v2")  # no suite given -> empty suite
    for sub in ("expectations", "validation_definitions", "checkpoints"):
        assert (project / sub / "passengers_v2.json").is_file()
    # An empty suite would pass anything: the gate refuses to run it rather than publish unaudited data.
    with pytest.raises(AuditConfigError, match="'passengers_v2' has no expectations"):
        run_checkpoint(table_to_dataframe(base_table), "passengers_v2", gx_dir=project)


# --- demo data ----------------------------------------------------------------------------------------


def test_generate_titanic_mimics_the_real_table() -> None:
    table = generate_titanic(891)
    assert table.schema == TITANIC_SCHEMA
    assert table.column("PassengerId").to_pylist() == list(range(1, 892))
    assert table.column("Embarked").null_count == 2
    assert 0.15 < table.column("Age").null_count / 891 < 0.25
    assert 0.70 < table.column("Cabin").null_count / 891 < 0.85
    for column in ("PassengerId", "Survived", "Pclass", "Name", "Sex", "SibSp", "Parch", "Ticket", "Fare"):
        assert table.column(column).null_count == 0, column
    assert generate_titanic(891).equals(table)  # deterministic
    assert not generate_titanic(891, seed=1).equals(table)
    assert generate_titanic(0).num_rows == 0 and generate_titanic(0).schema == TITANIC_SCHEMA


def test_corrupt_rejects_unknown_kinds(base_table: pa.Table) -> None:
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(base_table, "gremlins")
    assert corrupt(base_table, "age_out_of_range").num_rows == base_table.num_rows
    assert base_table.equals(generate_titanic(891, seed=0))  # corrupt() never mutates its input
