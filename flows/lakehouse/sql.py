"""Read-only SQL over one ref's tables, with DuckDB.

Each table on the ref is exposed as a view `namespace.table` over its Parquet data files (a pyarrow
dataset, so DuckDB pushes projections and filters down and reads lazily). The files' columns are matched
to the table's by Iceberg field id, not by name: pyiceberg stores `first name` as `first_x20name`, and a
file written before a column was added lacks it (NULL there). Before the user's SQL runs,
every statement must be a plain query, and the connection is locked down: no file system access
(no COPY, ATTACH, read_csv of arbitrary paths), no extension install or autoload, configuration frozen.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .errors import QueryError, StorageError
from .names import DEFAULT_NAMESPACE, validate_identifier
from .parquet_fields import children, physical_schema

if TYPE_CHECKING:
    from .protocol import ReadsTableFiles

# DuckDB's own default is 80% of the machine's memory. Bounded, a large aggregate (uniqueness over a 100M-row
# table) spills to disk instead, so the gate's memory stays flat as tables grow. DuckDB's resident memory runs
# ~0.2 GB above its limit, on top of the gate's own ~0.7 GB (Prefect, GX, pyarrow): at 1GB the gate peaked at
# 1.72 GB auditing 30M rows; at 512MB the uniqueness grouping of 30M ids took no more CPU time (6.4 s vs 7.0 s)
# and peaked 0.48 GB lower (tests/benchmarks/bench_100m.py).
DUCKDB_MEMORY_LIMIT = "512MB"
_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


class BoundedDuckDB:
    """An in-memory DuckDB connection whose working memory is bounded by ``WAP_DUCKDB_MEMORY_LIMIT`` (default
    ``DUCKDB_MEMORY_LIMIT``); beyond it DuckDB spills to a temporary directory of its own, removed on close."""

    def __init__(self) -> None:
        limit = os.environ.get("WAP_DUCKDB_MEMORY_LIMIT", DUCKDB_MEMORY_LIMIT)
        if not _SIZE.match(limit):
            raise QueryError(f"WAP_DUCKDB_MEMORY_LIMIT must be a size such as 1GB or 512MB, got {limit!r}")
        # Private: two processes spilling into one directory could collide on file names.
        self.spill = tempfile.mkdtemp(prefix="wap-duckdb-")
        self.con = duckdb.connect(":memory:", config={"memory_limit": limit, "temp_directory": self.spill})
        self.con.execute("SET enable_progress_bar = false")  # else printed into the gate's output on long queries

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.spill, ignore_errors=True)

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def __exit__(self, *exc: Any) -> None:
        self.close()


_LOCKDOWN = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)


def check_read_only(query: str) -> None:
    """Refuse anything but SELECT statements (writes, ATTACH, COPY, PRAGMA, SET, INSTALL/LOAD...)."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(f"invalid SQL: {str(exc).splitlines()[0]}") from exc
    if not statements:
        raise QueryError("empty query")
    for statement in statements:
        if statement.type != duckdb.StatementType.SELECT:
            kind = str(statement.type).rsplit(".", 1)[-1]
            raise QueryError(f"only read-only SELECT queries are allowed, got {kind}")


def run_readonly_query(
    client: ReadsTableFiles, query: str, *, ref: str, namespace: str | None = None, max_rows: int | None = None
) -> pa.Table:
    """Run `query` over views of every table on `ref`; give a pinned ref (`branch@hash`) so that every table
    is read at one commit even if the branch moves while the views are built. `max_rows`: DuckDB stops after
    that many rows (a LIMIT on the query's relation), rather than computing them all and cutting."""
    check_read_only(query)
    default = validate_identifier(DEFAULT_NAMESPACE if namespace is None else namespace, "namespace")
    bounded = BoundedDuckDB()
    con = bounded.con
    try:
        schemas = _expose_tables(con, client, ref)
        if default in schemas:
            con.execute(f"SET schema = '{default}'")
        for statement in _LOCKDOWN:
            con.execute(statement)
        try:
            relation = con.sql(query)
            if max_rows is not None:
                relation = relation.limit(max_rows)
            # DuckDB 2 names it to_arrow_table; 1.x calls it arrow().
            return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        except duckdb.Error as exc:
            raise QueryError(str(exc).splitlines()[0]) from exc
    finally:
        bounded.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _expose_tables(con: duckdb.DuckDBPyConnection, client: ReadsTableFiles, ref: str) -> set[str]:
    """Create a view `namespace.table` per table on `ref`; return the namespaces that hold views."""
    # A per-query prefix, so a hidden name never collides with a user's table.
    prefix = f"__wap_{uuid.uuid4().hex[:8]}_"
    schemas: set[str] = set()
    for index, info in enumerate(client.get_tables(ref)):
        schema, files = client.data_files(info.name, ref=ref, namespace=info.namespace)
        parts = []
        for part, (data, stored) in enumerate(_datasets(schema, files, f"{info.namespace}.{info.name}")):
            parts.append((f"{prefix}{index}_{part}", stored))
            con.register(parts[-1][0], data)
        try:
            # In the `memory` catalog explicitly, and IF NOT EXISTS: a namespace may be named like one of
            # DuckDB's own schemas or catalogs ("main", "temp", "system"). Names are validated identifiers.
            con.execute(f'CREATE SCHEMA IF NOT EXISTS memory."{info.namespace}"')
            con.execute(f'CREATE VIEW memory."{info.namespace}"."{info.name}" AS {_view_sql(schema, parts)}')
        except duckdb.Error:
            # Reserved by DuckDB (information_schema, pg_catalog): that table cannot be named in SQL,
            # but it must not make every other table unqueryable.
            for name, _ in parts:
                con.unregister(name)
            continue
        schemas.add(info.namespace)
    return schemas


def _datasets(schema: pa.Schema, files: list[str], table: str) -> list[tuple[ds.Dataset | pa.Table, pa.Schema]]:
    """The table's rows as pyarrow datasets, one per layout of its files, each in `schema`'s layout and types.

    A dataset matches Parquet columns by name, so each one is given the schema under the names its files
    store (matched by field id in each file's footer); the view renames them back. Files written under
    the same table schema share one dataset: usually there is one. Each comes with that stored schema.
    """
    if not files:
        return [(schema.empty_table(), schema)]
    layouts: dict[bytes, tuple[pa.Schema, list[str]]] = {}
    for path in files:
        try:
            stored = physical_schema(schema, pq.read_schema(path))
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"cannot read data file {path} of table {table}: {str(exc).splitlines()[0]}") from exc
        except ValueError as exc:
            raise StorageError(f"data file {path} of table {table} does not match its schema: {exc}") from exc
        layouts.setdefault(stored.serialize().to_pybytes(), (stored, []))[1].append(path)
    return [(ds.dataset(paths, schema=stored, format="parquet"), stored) for stored, paths in layouts.values()]


def _view_sql(schema: pa.Schema, parts: list[tuple[str, pa.Schema]]) -> str:
    """SELECT each registered dataset's columns under the table's names (see `_datasets`), UNION ALL.

    Top-level columns are renamed positionally (`AS t(c0, c1, ...)`), not by their stored names: DuckDB
    matches identifiers case-insensitively and renames `a` next to `A`. Plain renames keep DuckDB's
    projection and filter pushdown into the dataset scan.
    """
    columns = [f"c{i}" for i in range(len(schema))]
    aliases = ", ".join(columns)
    selects = []
    for name, stored in parts:
        exprs = []
        for column, field, stored_field in zip(columns, schema, stored, strict=True):
            renamed = _rename_nested(column, field.type, stored_field.type, 0) or column
            exprs.append(f"{renamed} AS {_quote(field.name)}")
        selects.append(f"SELECT {', '.join(exprs)} FROM {name} AS __wap_t({aliases})")
    return " UNION ALL ".join(selects)


def _rename_nested(expr: str, table_type: pa.DataType, stored_type: pa.DataType, depth: int) -> str | None:
    """SQL turning `expr` (a value of `stored_type`) into `table_type`'s field names; None if they are the same.

    Only names differ between the two types (same layout, see `physical_schema`). DuckDB casts structs by
    field name, so the struct is rebuilt field by field; lists and maps are rebuilt element by element.
    """
    wanted, have = children(table_type), children(stored_type)
    if not wanted:
        return None
    var = f"__wap_v{depth}"  # a lambda variable per nesting level
    if pa.types.is_struct(table_type):
        inner = []
        for w, h in zip(wanted, have, strict=True):
            source = f"struct_extract({expr}, {_literal(h.name)})"
            inner.append((w.name, h.name, _rename_nested(source, w.type, h.type, depth + 1), source))
        if all(w == h and renamed is None for w, h, renamed, _ in inner):
            return None
        packed = ", ".join(f"{_quote(w)} := {renamed or source}" for w, _, renamed, source in inner)
        # struct_pack over a NULL struct gives a struct of NULLs; keep the NULL.
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE struct_pack({packed}) END"
    if pa.types.is_map(table_type):
        key = _rename_nested(f"struct_extract({var}, 'key')", wanted[0].type, have[0].type, depth + 1)
        value = _rename_nested(f"struct_extract({var}, 'value')", wanted[1].type, have[1].type, depth + 1)
        if key is None and value is None:
            return None
        key = key or f"struct_extract({var}, 'key')"
        value = value or f"struct_extract({var}, 'value')"
        entry = f"{{'key': {key}, 'value': {value}}}"
        return f"map_from_entries(list_transform(map_entries({expr}), lambda {var}: {entry}))"
    element = _rename_nested(var, wanted[0].type, have[0].type, depth + 1)  # a list: element names do not matter
    return None if element is None else f"list_transform({expr}, lambda {var}: {element})"
