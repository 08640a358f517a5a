"""The audit's two suites and its suite parameters (the facts of the published table), on the real embedded
lakehouse and the real GX context, without Prefect: `audit_table` is what the gate's audit task runs.

The checkpoint is the shipped `titanic` one (batch suite `titanic`, table suite `titanic_table`), in a copy of
gx/ whose table suite the tests may extend.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from flows.audit import AuditConfigError, audit_table, run_checkpoint, table_to_dataframe
from flows.audit.baseline import column_key, published_baseline
from flows.demo.data import generate_titanic
from flows.lakehouse import MAIN, connect


@pytest.fixture
def gx_dir(shipped_gx: Path) -> Path:
    return shipped_gx


def _add_table_rules(gx_dir: Path, *expectations: dict) -> None:
    path = gx_dir / "expectations" / "titanic_table.json"
    suite = json.loads(path.read_text())
    suite["expectations"] += list(expectations)
    path.write_text(json.dumps(suite, indent=2))


def _parquet(table: pa.Table, path: Path) -> str:
    pq.write_table(table, path)
    return str(path)


def _with_fares(table: pa.Table, fare: float) -> pa.Table:
    return table.set_column(table.schema.get_field_index("Fare"), "Fare", pa.array([fare] * table.num_rows))


def _scaled_fares(table: pa.Table, top: float) -> pa.Table:
    """The same passengers with fares scaled so that the highest is exactly `top`."""
    fares = table.column("Fare")
    scaled = pc.multiply(fares, top / pc.max(fares).as_py())
    return table.set_column(table.schema.get_field_index("Fare"), "Fare", scaled)


def _write(client, branch: str, source: str, *, create: bool) -> str:
    """One run's write: the branch from main, the table (re)created or appended to; returns main@base and the ref."""
    base = client.create_branch(branch, from_ref=MAIN).hash
    if create:
        client.create_table("titanic", source, branch=branch, replace=True)
    client.import_data("titanic", source, branch=branch)
    return f"{MAIN}@{base}", f"{branch}@{client.get_branch(branch).hash}"


def _publish(client, branch: str, source: str, *, create: bool) -> None:
    _, ref = _write(client, branch, source, create=create)
    client.merge_branch(ref, MAIN)
    client.delete_branch(branch)


def _audit_append(client, ref: str, published: str, gx_dir: Path, pushdown: bool | None = None):
    return audit_table(
        client, "titanic", ref=ref, checkpoint="titanic", gx_dir=gx_dir, published=published, appended=True,
        pushdown=pushdown,
    )  # fmt: skip


def test_first_run_the_new_table_is_its_own_baseline(tmp_path, gx_dir):
    client = connect("local", tmp_path / "lake")
    data = generate_titanic(300, seed=3)
    published, ref = _write(client, "alice.first", _parquet(data, tmp_path / "first.parquet"), create=True)

    result = audit_table(client, "titanic", ref=ref, checkpoint="titanic", gx_dir=gx_dir, published=published)

    assert result.success, [e for e in result.failed]
    baseline = result.baseline
    assert baseline is not None and baseline.first_run and baseline.measured == ref
    assert baseline.parameters["main_has_table"] == 0
    assert baseline.parameters["main_row_count"] == 300
    assert baseline.values_used() == {"main_fare_max": pc.max(data.column("Fare")).as_py()}
    assert [(s.suite_name, s.validates, s.rows) for s in result.suites] == [
        ("titanic", "batch", 300),
        ("titanic_table", "table", 300),
    ]


@pytest.mark.parametrize("pushdown", [False, True], ids=["pandas", "duckdb"])
def test_an_append_audits_the_batch_alone_and_the_table_it_makes(tmp_path, gx_dir, pushdown):
    """The batch suite sees the 60 new rows, the table suite main's 200 plus them: a batch row-count cap of 250
    passes on the batch although the table has 260 rows; the colliding ids fail the table suite only."""
    suite_path = gx_dir / "expectations" / "titanic.json"
    suite = json.loads(suite_path.read_text())
    for e in suite["expectations"]:
        if e["type"] == "expect_table_row_count_to_be_between":
            e["kwargs"]["max_value"] = 250
    suite_path.write_text(json.dumps(suite, indent=2))
    client = connect("local", tmp_path / "lake")
    _publish(client, "alice.first", _parquet(generate_titanic(200, seed=1), tmp_path / "main.parquet"), create=True)

    fresh = _parquet(generate_titanic(60, seed=2, first_id=201), tmp_path / "fresh.parquet")
    published, ref = _write(client, "alice.fresh", fresh, create=False)
    passed = _audit_append(client, ref, published, gx_dir, pushdown=pushdown)
    assert passed.success, passed.failed
    assert [(s.validates, s.rows) for s in passed.suites] == [("batch", 60), ("table", 260)]
    client.delete_branch("alice.fresh")

    # Ids 151..210: each unique in the batch, 50 of them (151..200) already on main.
    colliding = _parquet(generate_titanic(60, seed=4, first_id=151), tmp_path / "colliding.parquet")
    published, ref = _write(client, "alice.colliding", colliding, create=False)
    blocked = _audit_append(client, ref, published, gx_dir, pushdown=pushdown)
    assert not blocked.success
    [failed] = blocked.failed
    assert (failed.suite, failed.validates, failed.expectation_type) == (
        "titanic_table",
        "table",
        "expect_column_values_to_be_unique",
    )
    assert failed.unexpected_count == 100  # each colliding id twice: main's row and the batch's
    assert set(failed.partial_unexpected_list) <= set(range(151, 201))
    assert blocked.suite_audit("batch").success and not blocked.suite_audit("table").success
    assert blocked.suite_audit("table").row_metrics == ("duckdb" if pushdown else "pandas")


def test_a_drift_rule_compares_the_table_with_main_through_a_parameter(tmp_path, gx_dir):
    """The shipped rule: no fare above twice main's highest. main's highest is 100; a batch at 300 passes the batch
    suite (fares up to 1000) and fails the drift rule, whose resolved bound the result shows."""
    client = connect("local", tmp_path / "lake")
    main_rows = _scaled_fares(generate_titanic(200, seed=1), 100.0)
    _publish(client, "alice.first", _parquet(main_rows, tmp_path / "main.parquet"), create=True)
    head = client.get_branch(MAIN).hash

    pricey = _with_fares(generate_titanic(20, seed=2, first_id=201), 300.0)
    published, ref = _write(client, "alice.pricey", _parquet(pricey, tmp_path / "pricey.parquet"), create=False)
    result = _audit_append(client, ref, published, gx_dir)

    assert published == f"{MAIN}@{head}"
    assert result.baseline is not None and not result.baseline.first_run
    assert result.baseline.measured == published
    assert result.baseline.values_used() == {"main_fare_max": pytest.approx(100.0)}
    [failed] = result.failed
    assert (failed.suite, failed.column, failed.kwargs["max_value"]) == ("titanic_table", "Fare", pytest.approx(200.0))
    assert failed.unexpected_count == 20
    assert result.suite_audit("batch").success


def test_every_fact_matches_an_independent_computation(tmp_path):
    """Row count, columns, and per column null count and fraction, distinct count, min and max, against pyarrow."""
    client = connect("local", tmp_path / "lake")
    data = generate_titanic(500, seed=5)
    _publish(client, "alice.first", _parquet(data, tmp_path / "main.parquet"), create=True)
    main = f"{MAIN}@{client.get_branch(MAIN).hash}"

    facts = published_baseline(client, "titanic", published=main, audited=main, namespace=None).parameters

    stored = client.scan("titanic", ref=MAIN)
    assert facts["main_has_table"] == 1 and facts["main_row_count"] == 500
    assert facts["main_columns"] == stored.schema.names and facts["main_column_count"] == len(stored.schema)
    for name in stored.schema.names:
        column, key = stored.column(name), column_key(name)
        nulls = column.null_count
        assert facts[f"main_{key}_null_count"] == nulls, name
        assert facts[f"main_{key}_null_fraction"] == pytest.approx(nulls / 500), name
        assert facts[f"main_{key}_distinct_count"] == len(pc.unique(column.drop_null())), name
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            assert facts[f"main_{key}_min"] == pc.min(column).as_py(), name
            assert facts[f"main_{key}_max"] == pc.max(column).as_py(), name
        else:
            assert f"main_{key}_min" not in facts, name
    assert facts["main_age_null_count"] > 0  # the generated data has missing ages: the null facts are exercised


def test_nan_counts_as_null_and_is_no_minimum_or_maximum(tmp_path):
    """pandas (and so GX) treats NaN as missing: the facts do too."""
    client = connect("local", tmp_path / "lake")
    data = pa.table({"id": [1, 2, 3, 4], "score": [1.5, math.nan, None, 9.0]})
    _publish(client, "alice.first", _parquet(data, tmp_path / "scores.parquet"), create=True)
    main = f"{MAIN}@{client.get_branch(MAIN).hash}"

    facts = published_baseline(client, "titanic", published=main, audited=main, namespace=None).parameters

    assert facts["main_score_null_count"] == 2 and facts["main_score_null_fraction"] == 0.5
    assert (facts["main_score_min"], facts["main_score_max"], facts["main_score_distinct_count"]) == (1.5, 9.0, 2)


def test_a_parameter_no_fact_provides_is_one_clear_error(tmp_path, gx_dir):
    _add_table_rules(
        gx_dir,
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": {"$PARAMETER": "main_rows_count"}}},
    )
    client = connect("local", tmp_path / "lake")
    published, ref = _write(client, "alice.first", _parquet(generate_titanic(10), tmp_path / "a.parquet"), create=True)
    with pytest.raises(AuditConfigError) as raised:
        audit_table(client, "titanic", ref=ref, checkpoint="titanic", gx_dir=gx_dir, published=published)
    assert str(raised.value) == (
        "suite 'titanic_table' uses suite parameter main_rows_count, which has no value: no such fact of the"
        " published table (the main_* names are listed in the README)"
    )


def test_a_min_or_max_main_has_no_value_for_is_refused_naming_why(tmp_path, gx_dir):
    """main's Fare column has no value at all: there is no highest fare to compare with, so the drift rule cannot
    be evaluated; the audit is refused rather than guessed."""
    client = connect("local", tmp_path / "lake")
    no_fares = generate_titanic(30, seed=1)
    no_fares = no_fares.set_column(no_fares.schema.get_field_index("Fare"), "Fare", pa.nulls(30, pa.float64()))
    _publish(client, "alice.first", _parquet(no_fares, tmp_path / "main.parquet"), create=True)
    batch = _parquet(generate_titanic(10, seed=2, first_id=31), tmp_path / "b.parquet")
    published, ref = _write(client, "alice.b", batch, create=False)
    with pytest.raises(AuditConfigError, match="main_fare_max, which has no value: that column has no value on main"):
        _audit_append(client, ref, published, gx_dir)


def test_row_count_and_schema_parameters_in_gx_rules(tmp_path, gx_dir):
    """`main_row_count` in an expression and `main_columns` as a whole list, as a user writes them."""
    _add_table_rules(
        gx_dir,
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {
                "min_value": {"$PARAMETER": "main_row_count"},
                "max_value": {"$PARAMETER": "main_row_count + 25"},
            },
        },
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": {"$PARAMETER": "main_columns"}}},
    )
    client = connect("local", tmp_path / "lake")
    _publish(client, "alice.first", _parquet(generate_titanic(100, seed=1), tmp_path / "main.parquet"), create=True)

    for rows, passes in ((25, True), (26, False)):
        batch = _parquet(generate_titanic(rows, seed=rows, first_id=101), tmp_path / f"b{rows}.parquet")
        published, ref = _write(client, f"alice.b{rows}", batch, create=False)
        result = _audit_append(client, ref, published, gx_dir)
        assert result.success is passes, (rows, result.failed)
        if not passes:
            assert [e.expectation_type for e in result.failed] == ["expect_table_row_count_to_be_between"]
        assert set(result.baseline.values_used()) == {"main_fare_max", "main_row_count", "main_columns"}
        client.delete_branch(f"alice.b{rows}")


def test_run_checkpoint_without_a_published_table_uses_the_data_as_its_own_baseline(gx_dir):
    """`wap validate` with no lakehouse table to compare with: as on a first run."""
    frame = table_to_dataframe(generate_titanic(120, seed=6))
    result = run_checkpoint(frame, "titanic", gx_dir=gx_dir)
    assert result.success, result.failed
    assert result.baseline is not None and result.baseline.first_run
    assert result.baseline.parameters["main_row_count"] == 120
    assert [s.suite_name for s in result.suites] == ["titanic", "titanic_table"]
