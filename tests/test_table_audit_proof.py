"""An append's table audit relies on what the publish of main's table proved (``flows.audit.proof``).

Uniqueness across main plus the batch is checked as a semi-join of the batch's ids against main's when the commit
that published main's files recorded those ids as proven distinct; GX's results must be exactly those of grouping
the whole table (compared field by field with GX on pandas). Without such a record, or when main's files are not
the ones it proved, the table is grouped as before. Real embedded lakehouse, real GX context, shipped suites.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.audit import audit_table
from flows.audit.gx_project import TABLE
from flows.audit.proof import FILES_PROPERTY, UNIQUE_PROPERTY, files_fingerprint
from flows.demo.data import generate_titanic
from flows.lakehouse import MAIN, connect


def _parquet(table: pa.Table, path: Path) -> str:
    pq.write_table(table, path)
    return str(path)


def _with_ids(table: pa.Table, ids: list[int]) -> pa.Table:
    return table.set_column(table.schema.get_field_index("PassengerId"), "PassengerId", pa.array(ids, pa.int64()))


def _publish_main(client, tmp_path: Path, shipped_gx: Path, *, record_proof: bool) -> str:
    """main's table: 1,200 passengers (ids 1..1200) in three files, published with its audit's proof (or without)."""
    base = client.create_branch("alice.first", from_ref=MAIN).hash
    for part in range(3):
        source = _parquet(generate_titanic(400, seed=part, first_id=1 + 400 * part), tmp_path / f"main-{part}.parquet")
        if part == 0:
            client.create_table("titanic", source, branch="alice.first")
        client.import_data("titanic", source, branch="alice.first")
    ref = f"alice.first@{client.get_branch('alice.first').hash}"
    audit = audit_table(client, "titanic", ref=ref, checkpoint="titanic", gx_dir=shipped_gx, published=f"{MAIN}@{base}")
    assert audit.success and audit.proof is not None and audit.proof.unique_columns == ("PassengerId",)
    head = client.merge_branch(ref, MAIN, commit_properties=audit.proof.properties() if record_proof else None)
    client.delete_branch("alice.first")
    return head


def _append(client, tmp_path: Path, ids: list[int]) -> tuple[str, str]:
    base = client.create_branch("bob.batch", from_ref=MAIN).hash
    batch = _with_ids(generate_titanic(len(ids), seed=9, first_id=5000), ids)
    client.import_data("titanic", _parquet(batch, tmp_path / "batch.parquet"), branch="bob.batch")
    return f"{MAIN}@{base}", f"bob.batch@{client.get_branch('bob.batch').hash}"


def _audit_both(client, ref: str, published: str, shipped_gx: Path):
    kwargs = dict(ref=ref, checkpoint="titanic", gx_dir=shipped_gx, published=published, appended=True)
    return audit_table(client, "titanic", pushdown=True, **kwargs), audit_table(
        client, "titanic", pushdown=False, **kwargs
    )


def _table_results(result) -> list[str]:
    rows = []
    for r in result.suite_audit(TABLE).validation_result.results:
        d = r.to_json_dict()
        d.pop("meta", None)
        rows.append(json.dumps(d, sort_keys=True, default=str))
    return rows


def _unique(result):
    return next(e for e in result.expectations if e.validates == TABLE and e.expectation_type.endswith("_be_unique"))


# A batch of 8 new rows: ids 5 and 900 collide with main's (in different files), 2001 occurs twice within the batch.
COLLIDING = [2000, 5, 2001, 2002, 900, 2001, 2003, 2004]


def test_a_publish_records_what_its_audit_proved_about_the_table(tmp_path, shipped_gx):
    client = connect("local", tmp_path / "lake")
    head = _publish_main(client, tmp_path, shipped_gx, record_proof=True)
    properties = client.get_commits(MAIN, limit=1)[0].properties
    assert client.get_commits(MAIN, limit=1)[0].hash == head
    assert properties[FILES_PROPERTY] == files_fingerprint(client.data_files("titanic", ref=MAIN)[1])
    assert json.loads(properties[UNIQUE_PROPERTY]) == ["PassengerId"]


def test_colliding_ids_found_by_the_semi_join_give_exactly_gx_grouping_result(tmp_path, shipped_gx):
    client = connect("local", tmp_path / "lake")
    head = _publish_main(client, tmp_path, shipped_gx, record_proof=True)
    published, ref = _append(client, tmp_path, COLLIDING)
    pushed, plain = _audit_both(client, ref, published, shipped_gx)
    assert pushed.suite_audit(TABLE).row_metrics == "duckdb" and plain.suite_audit(TABLE).row_metrics == "pandas"
    assert pushed.relied_proof is not None and pushed.relied_proof.commit == head
    assert pushed.relied_proof.unique_columns == ("PassengerId",)
    assert _table_results(pushed) == _table_results(plain)
    unique = _unique(pushed)
    # Rows 4 and 899 of main, the two batch rows colliding with them, and both copies of 2001.
    assert not unique.success and unique.unexpected_count == 6
    assert sorted(unique.partial_unexpected_list) == [5, 5, 900, 900, 2001, 2001]
    assert len(unique.partial_unexpected_index_list) == 6  # positions in the scan's order, as pandas numbers them
    assert not pushed.success


def test_a_clean_batch_passes_through_the_semi_join_as_through_grouping(tmp_path, shipped_gx):
    client = connect("local", tmp_path / "lake")
    _publish_main(client, tmp_path, shipped_gx, record_proof=True)
    published, ref = _append(client, tmp_path, list(range(3000, 3010)))
    pushed, plain = _audit_both(client, ref, published, shipped_gx)
    assert pushed.relied_proof is not None
    assert _table_results(pushed) == _table_results(plain)
    assert pushed.success and _unique(pushed).unexpected_count == 0
    # The state it would publish is proven in turn: main's files plus the batch's.
    assert pushed.proof.files == files_fingerprint(client.data_files("titanic", ref=ref)[1])
    assert pushed.proof.unique_columns == ("PassengerId",)


def test_without_a_recorded_proof_the_table_is_grouped(tmp_path, shipped_gx):
    client = connect("local", tmp_path / "lake")
    _publish_main(client, tmp_path, shipped_gx, record_proof=False)
    published, ref = _append(client, tmp_path, COLLIDING)
    pushed, plain = _audit_both(client, ref, published, shipped_gx)
    assert pushed.relied_proof is None
    assert _table_results(pushed) == _table_results(plain) and _unique(pushed).unexpected_count == 6


def test_a_proof_of_other_files_is_not_relied_on(tmp_path, shipped_gx):
    """main's table changed after the proven publish (here: rows merged without an audit, duplicating id 7): the
    fingerprint no longer matches, so the duplicate inside main is found by grouping."""
    client = connect("local", tmp_path / "lake")
    _publish_main(client, tmp_path, shipped_gx, record_proof=True)
    client.create_branch("carol.direct", from_ref=MAIN)
    extra = _with_ids(generate_titanic(1, seed=4, first_id=1), [7])
    client.import_data("titanic", _parquet(extra, tmp_path / "extra.parquet"), branch="carol.direct")
    client.merge_branch("carol.direct", MAIN)
    published, ref = _append(client, tmp_path, list(range(3000, 3010)))
    pushed, plain = _audit_both(client, ref, published, shipped_gx)
    assert pushed.relied_proof is None
    assert _table_results(pushed) == _table_results(plain)
    assert _unique(pushed).unexpected_count == 2 and not pushed.success


@pytest.mark.parametrize("column", ["n", "N"])
def test_uniqueness_of_a_column_named_like_the_count_is_counted_right(tmp_path, column):
    """The row counts of the grouping are aliased apart from the column: DuckDB would otherwise rename a column `n`
    and `n > 1` would compare its values (a repeated 0 counted as no duplicate at all)."""
    from flows.audit.pushdown import ParquetTableMetrics

    client = connect("local", tmp_path / "lake")
    client.create_branch("alice.t", from_ref=MAIN)
    first = _parquet(pa.table({column: pa.array([0, 1, 2], pa.int64())}), tmp_path / "a.parquet")
    client.create_table("t", first, branch="alice.t")
    client.import_data("t", first, branch="alice.t")
    client.import_data("t", _parquet(pa.table({column: pa.array([0, 0, 5], pa.int64())}), tmp_path / "b.parquet"),
                       branch="alice.t")  # fmt: skip
    schema, files = client.data_files("t", ref="alice.t")
    known = client.data_files("t", ref=f"alice.t@{client.get_commits('alice.t')[1].hash}")[1]
    for metrics in (
        ParquetTableMetrics(files, schema),
        ParquetTableMetrics(files, schema, distinct_in={column: known}),
    ):
        check = metrics._check("column_values.unique", column, {})
        assert metrics._query_count(check) == 3  # the three zeros
        metrics.close()
