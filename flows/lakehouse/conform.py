"""Fit a source's columns to the table they are appended to: the table's schema decides.

A CSV batch has no types of its own: Arrow infers them from the values it sees, so a batch whose ages are all
whole numbers reads as long while the table holds doubles. Types are compared as Iceberg stores them (Arrow's
string and large_string, say, are one Iceberg type). A column whose stored type differs is converted when the
conversion keeps every value (int to long, float to double, an integer to a double up to 2**53, a column of
nulls to anything); any other difference (a missing or extra column, a narrower or different type) is
refused, naming each column, before a row is written. Nested columns are left to pyiceberg's own check.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.schema import Schema
from pyiceberg.types import DoubleType, FloatType, IcebergType, IntegerType, LongType, NestedField, StringType

from .errors import SchemaMismatchError, SourceError

MAX_EXACT_INTEGER_IN_DOUBLE = 2**53

BatchConverter = Callable[[pa.RecordBatch], pa.RecordBatch]

# Source type -> table types it converts to without changing a value (integers to double: checked per value).
_WIDENS_TO: dict[type, tuple[type, ...]] = {
    IntegerType: (LongType, DoubleType),
    LongType: (DoubleType,),
    FloatType: (DoubleType,),
}


def conform_to_table(
    table_schema: Schema, source_schema: pa.Schema, uri: str, table: str, *, text_source: bool = False
) -> BatchConverter:
    """A function that converts each source batch's columns to the table's types where they differ.

    `text_source`: the source is text (CSV), whose columns Arrow typed by guessing from the values; a column
    guessed as text (a batch with no rows, or only empty values) is parsed as the table's type instead, and a
    value that does not parse is a retyped column. Raises SchemaMismatchError naming every missing,
    unexpected and retyped column if the source does not fit.
    """
    expected = {f.name: f.field_type for f in table_schema.fields}
    arrow = {f.name: f.type for f in source_schema}
    missing = sorted(n for n in expected if n not in arrow)
    extra = sorted(n for n in arrow if n not in expected)
    stored = _stored(source_schema)  # one conversion of the whole source schema
    got = {n: stored.get(n) for n in arrow if n in expected and expected[n].is_primitive}
    differ = [n for n in got if got[n] != expected[n]]
    parsed = {n for n in differ if text_source and isinstance(got[n], StringType)}
    retyped = [n for n in differ if n not in parsed and not _widens(got[n], expected[n])]
    if missing or extra or retyped:
        parts = [
            f"missing columns {', '.join(missing)}" if missing else "",
            f"unexpected columns {', '.join(extra)}" if extra else "",
            "retyped columns "
            + ", ".join(f"{n} ({got[n] or 'null'} in the source, {expected[n]} in the table)" for n in retyped)
            if retyped
            else "",
        ]
        raise SchemaMismatchError(
            f"source {uri} does not fit table {table}: {'; '.join(p for p in parts if p)}",
            table=table,
            missing=[(n, str(expected[n])) for n in missing],
            extra=[(n, str(stored.get(n) or "null")) for n in extra],
            retyped=[(n, str(got[n] or "null"), str(expected[n])) for n in retyped],
        )
    casts = {n: _arrow_type(n, expected[n]) for n in differ}

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        if not casts:
            return batch
        names = batch.schema.names
        columns = [
            _cast(batch.column(n), casts[n], uri, n, table, stored=str(expected[n]), parsed=n in parsed)
            if n in casts
            else batch.column(n)
            for n in names
        ]
        fields = [pa.field(n, casts[n]) if n in casts else batch.schema.field(n) for n in names]
        return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))

    return convert


def _stored(schema: pa.Schema) -> dict[str, IcebergType]:
    """The Iceberg type each column is stored as; a column of nulls is left out (any type fits it)."""
    typed = pa.schema([f for f in schema if not pa.types.is_null(f.type)])
    # pyiceberg's id-less conversion (private; guarded by tests/test_upstream_contract.py).
    return {f.name: f.field_type for f in Catalog._convert_schema_if_needed(typed).fields}


def _widens(source: IcebergType | None, table: IcebergType) -> bool:
    return source is None or isinstance(table, _WIDENS_TO.get(type(source), ()))


def _arrow_type(name: str, type_: IcebergType) -> pa.DataType:
    return schema_to_pyarrow(Schema(NestedField(1, name, type_, required=False))).field(0).type


def _cast(
    column: pa.Array, type_: pa.DataType, uri: str, name: str, table: str, *, stored: str, parsed: bool
) -> pa.Array:
    if pa.types.is_integer(column.type) and pa.types.is_floating(type_) and len(column):
        biggest = pc.max(pc.abs_checked(column)).as_py()
        if biggest is not None and biggest > MAX_EXACT_INTEGER_IN_DOUBLE:
            raise SourceError(
                f"source {uri}: column {name!r} holds {biggest}, which a double column cannot store exactly"
            )
    try:
        return pc.cast(column, type_, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        detail = " ".join(str(exc).split())
        if parsed:  # text that is not the table's type: the batch's column is retyped
            raise SchemaMismatchError(
                f"source {uri} does not fit table {table}: retyped columns {name} (text that is not {stored}:"
                f" {detail})",
                table=table,
                missing=[],
                extra=[],
                retyped=[(name, "string", stored)],
            ) from None
        raise SourceError(f"source {uri}: column {name!r} does not fit the table's {type_}: {detail}") from None
