"""The audit's fast paths give exactly the plain GX path's verdicts, on good data and on every corruption.

Fast paths: ``audit.audit_table`` (what the gate's audit task runs), both ways it can go:
- pushdown: row-level metrics computed by DuckDB over the branch's Parquet files (``flows.audit.pushdown``);
- pandas: the lakehouse scan converted with ``table_to_dataframe(consume=True)`` (Arrow buffers freed
  while converting, Arrow-backed columns made one chunk each).
Plain path: GX 1.x as documented: ``scan(...).to_pandas()`` then the checkpoint. The tables are written
in several row groups, so the scans really hand back many-chunk columns.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas.testing as pdt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.audit import AuditResult, audit_table, run_checkpoint, table_to_dataframe
from flows.demo.data import CORRUPTIONS, corrupt, generate_titanic
from flows.lakehouse import MAIN, connect

REPO_GX = Path(__file__).resolve().parents[1] / "gx"
ROWS = 900
ROW_GROUP = 250  # several chunks per column after the scan
NAMESPACE = "bauplan"


@pytest.fixture(scope="module")
def gx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the committed GX project whose checkpoint builds no data docs (the slow, growing part
    of a run at this size, and not what is compared here: test_audit.py covers data docs)."""
    target = tmp_path_factory.mktemp("gxspeed") / "gx"
    shutil.copytree(REPO_GX, target, ignore=shutil.ignore_patterns("uncommitted"))
    checkpoint = target / "checkpoints" / "titanic.json"
    config = json.loads(checkpoint.read_text())
    config["actions"] = []
    checkpoint.write_text(json.dumps(config, indent=2))
    return target


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory: pytest.TempPathFactory):
    """One lakehouse with a branch per case (good data and each corruption), written in row groups."""
    root = tmp_path_factory.mktemp("lhspeed")
    client = connect("local", root / "lakehouse")
    base = generate_titanic(ROWS, seed=3)
    for kind in ["good", *sorted(CORRUPTIONS)]:
        table = base if kind == "good" else corrupt(base, kind)
        source = root / f"{kind}.parquet"
        pq.write_table(table, source, row_group_size=ROW_GROUP)
        client.create_branch(f"speed.{kind}", MAIN)
        client.create_table("titanic", str(source), branch=f"speed.{kind}", namespace=NAMESPACE)
        client.import_data("titanic", str(source), branch=f"speed.{kind}", namespace=NAMESPACE)
    return client


def comparable(result: AuditResult) -> list[str]:
    """Each expectation's full GX result (config, success, statistics, unexpected counts and lists)."""
    rows = []
    for r in result.validation_result.results:
        d = r.to_json_dict()
        d.pop("meta", None)  # per-run
        rows.append(json.dumps(d, sort_keys=True, default=str))
    return rows


# Corruptions whose suite checks the pushdown cannot compute exactly (a range check on a text column,
# a column the suite names but the table lacks): those audits run GX on pandas.
PANDAS_ONLY = {"age_as_string", "fare_as_string", "renamed_column"}


# The fast tier checks good data, a corruption the pushdown computes and one it hands to pandas; every
# other corruption runs in the full suite (`soak`).
FAST_KINDS = {"good", "unknown_sex", "renamed_column"}
KINDS = [k if k in FAST_KINDS else pytest.param(k, marks=pytest.mark.soak) for k in ["good", *sorted(CORRUPTIONS)]]


@pytest.mark.parametrize("pushdown", [True, False], ids=["pushdown", "pandas"])
@pytest.mark.parametrize("kind", KINDS)
def test_fast_path_matches_plain_gx(gx_dir: Path, lakehouse, kind: str, pushdown: bool) -> None:
    branch = f"speed.{kind}"
    plain_df = lakehouse.scan("titanic", ref=branch, namespace=NAMESPACE).to_pandas()
    plain = run_checkpoint(plain_df, "titanic", gx_dir=gx_dir, run_name=f"plain-{kind}")
    fast = audit_table(
        lakehouse,
        "titanic",
        ref=branch,
        namespace=NAMESPACE,
        checkpoint="titanic",
        gx_dir=gx_dir,
        run_name=kind,
        pushdown=pushdown,
    )
    assert fast.row_metrics == ("duckdb" if pushdown and kind not in PANDAS_ONLY else "pandas")
    assert fast.success is plain.success is (kind == "good")
    assert fast.statistics == plain.statistics
    assert [(e.expectation_type, e.column, e.success) for e in fast.expectations] == [
        (e.expectation_type, e.column, e.success) for e in plain.expectations
    ]
    assert comparable(fast) == comparable(plain)


def test_table_to_dataframe_is_to_pandas_with_one_chunk_per_column() -> None:
    base = generate_titanic(600, seed=5)
    chunked = pa.Table.from_batches(base.to_batches(max_chunksize=100))
    assert chunked.column("Name").num_chunks == 6
    expected = chunked.to_pandas()
    for df in (table_to_dataframe(chunked), table_to_dataframe(chunked.select(chunked.column_names), consume=True)):
        pdt.assert_frame_equal(df, expected)
        assert {c: str(t) for c, t in df.dtypes.items()} == {c: str(t) for c, t in expected.dtypes.items()}
        for column in ("Name", "Sex", "Ticket", "Cabin", "Embarked"):
            assert getattr(pa.array(df[column].array), "num_chunks", 1) == 1
    assert chunked.column("Name").num_chunks == 6  # without consume the caller's table is untouched
