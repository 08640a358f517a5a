"""Match a Parquet data file's columns to the Iceberg table's fields by field id, not by name.

pyiceberg stores a column under a sanitized name (``first name`` as ``first_x20name``, ``1st`` as ``_1st``,
nested struct fields too) and records the Iceberg field id in each Parquet field's ``PARQUET:field_id``; a
file written before a column was added or renamed holds the old set of names. The field id is the only
reliable link, as the Iceberg spec says. Both the audit pushdown (``flows.pushdown``) and ``query``
(``flows.lakehouse.sql``) read the files directly, so both match columns here.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

FIELD_ID_KEY = b"PARQUET:field_id"


def field_id(field: pa.Field) -> int | None:
    """The Iceberg field id pyiceberg attached to an Arrow field (read from Parquet or from the table schema)."""
    raw = (field.metadata or {}).get(FIELD_ID_KEY)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def match_fields(table_fields: Sequence[pa.Field], file_fields: Sequence[pa.Field]) -> list[pa.Field | None] | None:
    """For each table field, the file field with the same field id, or None if the file lacks it.

    None overall if some table field has no id, or two table fields share one (nothing to match on).
    """
    wanted = [field_id(f) for f in table_fields]
    if None in wanted or len(set(wanted)) != len(wanted):
        return None
    by_id: dict[int, pa.Field] = {}
    for f in file_fields:
        fid = field_id(f)
        if fid is not None:
            by_id.setdefault(fid, f)
    return [by_id.get(fid) for fid in wanted if fid is not None]  # every fid is an int: checked above


def stored_names(table_schema: pa.Schema, file_schema: pa.Schema) -> dict[str, str] | None:
    """Table column name -> column name in the file, when the file holds exactly the table's columns.

    None if some column cannot be matched by field id, or the file has columns the table does not.
    """
    matched = match_fields(list(table_schema), list(file_schema))
    if matched is None or any(m is None for m in matched) or len(file_schema) != len(table_schema):
        return None
    if len({field_id(f) for f in file_schema}) != len(file_schema):  # a file id without a table column
        return None
    return {t.name: m.name for t, m in zip(table_schema, matched, strict=True) if m is not None}


def children(t: pa.DataType) -> list[pa.Field]:
    """A nested type's child fields (struct fields, map key and value, list element); [] for a primitive."""
    if pa.types.is_struct(t):
        return [t.field(i) for i in range(t.num_fields)]
    if pa.types.is_map(t):
        return [t.key_field, t.item_field]
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [t.value_field]
    return []


def _with_children(t: pa.DataType, children: list[pa.Field]) -> pa.DataType:
    if pa.types.is_struct(t):
        return pa.struct(children)
    if pa.types.is_map(t):
        return pa.map_(children[0], children[1], keys_sorted=t.keys_sorted)
    if pa.types.is_large_list(t):
        return pa.large_list(children[0])
    if pa.types.is_fixed_size_list(t):
        return pa.list_(children[0], t.list_size)
    return pa.list_(children[0])


def physical_field(table_field: pa.Field, file_field: pa.Field | None, missing: str) -> pa.Field:
    """``table_field`` (its type, nullability and metadata) under the names the file uses, matched by field id.

    A field the file lacks (written before the column was added) is named ``missing`` plus its id, a name no
    file column has (checked), so a reader that matches by name (a pyarrow dataset) fills it with nulls.
    Reading the file with this schema gives the table's values in the table's layout, only named as stored.
    """
    name = file_field.name if file_field is not None else f"{missing}{field_id(table_field)}"
    table_children = children(table_field.type)
    if not table_children:
        return table_field.with_name(name)
    file_children = children(file_field.type) if file_field is not None else []
    matched = match_fields(table_children, file_children)
    if matched is None:  # children without ids (never from pyiceberg): keep the table's names
        return table_field.with_name(name)
    renamed = _physical_fields(table_children, file_children, matched, missing, "field")
    return table_field.with_name(name).with_type(_with_children(table_field.type, renamed))


def _physical_fields(
    table_fields: list[pa.Field], file_fields: list[pa.Field], matched: list, missing: str, kind: str
) -> list[pa.Field]:
    """``physical_field`` for each matched pair; a placeholder must not collide with a name the file has."""
    taken = {f.name for f in file_fields}
    fields = []
    for table_field, found in zip(table_fields, matched, strict=True):
        field = physical_field(table_field, found, missing)
        if found is None and field.name in taken:
            raise ValueError(f"a Parquet {kind} is named like the placeholder {field.name!r}")
        fields.append(field)
    return fields


def physical_schema(table_schema: pa.Schema, file_schema: pa.Schema, missing: str = "__wap_missing_") -> pa.Schema:
    """The table schema under the file's names (see ``physical_field``).

    A file without any field ids (not written by pyiceberg) is matched by name, as a plain Parquet reader would.
    """
    if not any(field_id(f) is not None for f in file_schema):
        return table_schema
    matched = match_fields(list(table_schema), list(file_schema))
    if matched is None:
        raise ValueError("the table schema has fields without a unique field id")
    fields = _physical_fields(list(table_schema), list(file_schema), matched, missing, "column")
    return pa.schema(fields, metadata=table_schema.metadata)
