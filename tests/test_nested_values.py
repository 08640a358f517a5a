"""Nested values (lists, structs, maps, with nulls at every level) come back exactly as the source holds them.

pyiceberg 0.12 wrote a null `list<struct>` as `[]`, and NULLs for a struct field with a sanitized name
inside a list of lists (see flows/lakehouse/pyiceberg_fixes.py): values changed at rest, exit 0. Each
case is read back three ways: pyiceberg's scan, `wap query` (DuckDB over the data files), and the data
files themselves with pyarrow.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.lakehouse import connect

# Names Iceberg stores sanitized (`first_x20name`, `order_x2Did`, `_1st`) next to plain ones.
FIELD_NAMES = ["a", "b", "first name", "order-id", "1st"]
LEAVES = [pa.int64(), pa.string(), pa.float64(), pa.bool_(), pa.timestamp("us")]


def arrow_types() -> st.SearchStrategy[pa.DataType]:
    def extend(children: st.SearchStrategy[pa.DataType]) -> st.SearchStrategy[pa.DataType]:
        struct = st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=3, unique=True).flatmap(
            lambda names: st.tuples(*[children for _ in names]).map(
                lambda types: pa.struct(list(zip(names, types, strict=True)))
            )
        )
        return st.one_of(children.map(pa.list_), struct, children.map(lambda t: pa.map_(pa.string(), t)))

    return st.recursive(st.sampled_from(LEAVES), extend, max_leaves=4)


def values_of(t: pa.DataType) -> st.SearchStrategy:
    if pa.types.is_list(t):
        inner = st.lists(values_of(t.value_type), max_size=3)
    elif pa.types.is_map(t):
        inner = st.lists(st.tuples(st.text(max_size=3), values_of(t.item_type)), max_size=2, unique_by=lambda kv: kv[0])
    elif pa.types.is_struct(t):
        inner = st.fixed_dictionaries({f.name: values_of(f.type) for f in t})
    elif t == pa.int64():
        inner = st.integers(-(2**63), 2**63 - 1)
    elif t == pa.string():
        inner = st.text(max_size=4)
    elif t == pa.float64():
        inner = st.floats(allow_nan=False)
    elif t == pa.bool_():
        inner = st.booleans()
    else:
        inner = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1))
    return st.none() | inner


@st.composite
def nested_tables(draw) -> pa.Table:
    t = draw(arrow_types())
    rows = draw(st.lists(values_of(t), min_size=1, max_size=7))
    return pa.table({"id": pa.array(range(len(rows)), pa.int64()), "v": pa.array(rows, type=t)})


def round_trip(source_table: pa.Table, workdir: Path, row_group_size: int) -> dict[str, list]:
    source = workdir / "source.parquet"
    # Small row groups: several batches per import, so pyiceberg also sees arrays with offsets.
    pq.write_table(source_table, source, row_group_size=row_group_size)
    client = connect("local", str(workdir / "lake"))
    client.create_table("t", str(source), branch="main")
    client.import_data("t", str(source), branch="main")
    data_files = sorted((workdir / "lake").rglob("data/*.parquet"))
    stored = pa.concat_tables([pq.read_table(f) for f in data_files]).sort_by("id")
    return {
        "scan": client.scan("t", ref="main").sort_by("id").column("v").to_pylist(),
        "query": client.query("select v from t order by id", ref="main").column("v").to_pylist(),
        # Stored under Iceberg's sanitized names: compare the values, which the names do not change.
        "data files": [_values_only(v) for v in stored.column("v").to_pylist()],
    }


def _values_only(value):
    if isinstance(value, dict):
        return [_values_only(v) for v in value.values()]
    if isinstance(value, list):
        return [_values_only(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_values_only(v) for v in value)
    return value


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=nested_tables(), row_group_size=st.integers(1, 4))
def test_nested_values_round_trip(table: pa.Table, row_group_size: int) -> None:
    expected = table.column("v").to_pylist()
    with tempfile.TemporaryDirectory() as tmp:
        seen = round_trip(table, Path(tmp), row_group_size)
    assert seen["scan"] == expected, f"type {table.schema.field('v').type}"
    assert seen["query"] == expected, f"type {table.schema.field('v').type}"
    assert seen["data files"] == [_values_only(v) for v in expected]


@pytest.mark.parametrize(
    ("name", "column"),
    [
        # the two cases that changed values before the fix
        ("null list<struct>", pa.array([[{"a": 1}], None, []], pa.list_(pa.struct([("a", pa.int64())])))),
        (
            "sanitized name in list<list<struct>>",
            pa.array([[[{"first name": "x"}]], None], pa.list_(pa.list_(pa.struct([("first name", pa.string())])))),
        ),
    ],
)
def test_known_pyiceberg_losses_are_fixed(tmp_path: Path, name: str, column: pa.Array) -> None:
    table = pa.table({"id": pa.array(range(len(column)), pa.int64()), "v": column})
    seen = round_trip(table, tmp_path, row_group_size=2)
    assert seen["scan"] == column.to_pylist(), name
    assert seen["query"] == column.to_pylist(), name


def test_upstream_pyiceberg_still_needs_the_fix(tmp_path: Path) -> None:
    """Pins the private method the fix replaces: when an upgrade fixes the bug (or renames the method),
    this fails, and flows/lakehouse/pyiceberg_fixes.py should go."""
    from pyiceberg.io.pyarrow import ArrowProjectionVisitor

    from flows.lakehouse import pyiceberg_fixes

    assert pyiceberg_fixes.installed()
    column = pa.array([[{"a": 1}], None], pa.list_(pa.struct([("a", pa.int64())])))
    table = pa.table({"id": pa.array([0, 1], pa.int64()), "v": column})
    ArrowProjectionVisitor.list = pyiceberg_fixes._upstream_list
    ArrowProjectionVisitor.map = pyiceberg_fixes._upstream_map
    try:
        seen = round_trip(table, tmp_path, row_group_size=2)
    finally:
        pyiceberg_fixes.install()
    assert seen["scan"] == [[{"a": 1}], []], "upstream pyiceberg now keeps null lists: remove pyiceberg_fixes.py"
