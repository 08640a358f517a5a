"""Appending to a table: a source's columns are fitted to the table's types when no value changes, refused
(naming each column) otherwise."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from flows.lakehouse import SourceError
from flows.lakehouse.conform import conform_to_table


def _table(*fields: tuple[str, pa.DataType]):
    return Catalog._convert_schema_if_needed(pa.schema(list(fields)))


TABLE = _table(("id", pa.int64()), ("age", pa.float64()), ("name", pa.string()), ("raw", pa.binary()))


def test_lossless_differences_are_converted_column_by_column():
    source = pa.schema(
        [("name", pa.large_string()), ("age", pa.int64()), ("id", pa.int32()), ("raw", pa.large_binary())]
    )
    batch = pa.record_batch(
        [
            pa.array(["a", None], pa.large_string()),
            pa.array([30, None]),
            pa.array([1, 2], pa.int32()),
            pa.array([b"x", None], pa.large_binary()),
        ],
        schema=source,
    )
    converted = conform_to_table(TABLE, source, "b.csv", "bauplan.t")(batch)
    # Converted where the stored (Iceberg) type differs; text stays text, binary stays binary.
    assert converted.schema.field("age").type == pa.float64() and converted.schema.field("id").type == pa.int64()
    assert converted.schema.field("name").type == pa.large_string()
    assert converted.to_pydict() == {"name": ["a", None], "age": [30.0, None], "id": [1, 2], "raw": [b"x", None]}


def test_a_column_of_nulls_fits_any_type():
    source = pa.schema([("id", pa.int64()), ("age", pa.null()), ("name", pa.string()), ("raw", pa.binary())])
    batch = pa.record_batch([pa.array([1]), pa.nulls(1), pa.array(["a"]), pa.array([b"x"])], schema=source)
    converted = conform_to_table(TABLE, source, "b.csv", "bauplan.t")(batch)
    assert converted.schema.field("age").type == pa.float64() and converted.column("age").null_count == 1


def test_every_missing_extra_and_retyped_column_is_named_in_one_line():
    source = pa.schema([("id", pa.string()), ("age", pa.float64()), ("cabin", pa.string()), ("raw", pa.binary())])
    with pytest.raises(SourceError) as raised:
        conform_to_table(TABLE, source, "b.csv", "bauplan.t")
    assert str(raised.value) == (
        "source b.csv does not fit table bauplan.t: missing columns name; unexpected columns cabin;"
        " retyped columns id (string in the source, long in the table)"
    )


def test_an_integer_beyond_what_a_double_holds_exactly_is_refused():
    table = _table(("x", pa.float64()))
    source = pa.schema([("x", pa.int64())])
    convert = conform_to_table(table, source, "b.csv", "bauplan.t")
    assert convert(pa.record_batch([pa.array([2**53])], schema=source)).column(0).to_pylist() == [float(2**53)]
    with pytest.raises(SourceError, match="which a double column cannot store exactly"):
        convert(pa.record_batch([pa.array([1, 2**53 + 1])], schema=source))


@pytest.mark.parametrize("source_type", [pa.float64(), pa.string(), pa.timestamp("us"), pa.int64()])
def test_a_narrowing_or_different_kind_is_a_retype(source_type):
    with pytest.raises(SourceError, match="retyped columns x"):
        conform_to_table(_table(("x", pa.int32())), pa.schema([("x", source_type)]), "b.csv", "t")


def test_a_text_source_column_guessed_as_text_is_parsed_as_the_table_s_type():
    """A CSV batch with no rows (or only empty values) reads as text; its values decide, not Arrow's guess."""
    from flows.lakehouse import SchemaMismatchError

    table = _table(("id", pa.int64()), ("age", pa.float64()))
    source = pa.schema([("id", pa.string()), ("age", pa.string())])
    with pytest.raises(SchemaMismatchError):
        conform_to_table(table, source, "b.parquet", "t")  # a typed (Parquet) source: a retype
    convert = conform_to_table(table, source, "b.csv", "t", text_source=True)
    empty = convert(pa.record_batch([pa.array([], pa.string()), pa.array([], pa.string())], schema=source))
    assert empty.schema.field("id").type == pa.int64() and empty.num_rows == 0
    parsed = convert(pa.record_batch([pa.array(["7", None]), pa.array(["1.5", "2"])], schema=source))
    assert parsed.to_pydict() == {"id": [7, None], "age": [1.5, 2.0]}
    with pytest.raises(SchemaMismatchError, match="retyped columns id") as raised:
        convert(pa.record_batch([pa.array(["yes"]), pa.array(["1"])], schema=source))
    assert raised.value.retyped == [("id", "string", "long")]
