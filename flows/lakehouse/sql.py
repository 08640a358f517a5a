"""Read-only SQL over one ref's tables, with DuckDB.

Each table on the ref is exposed as a view `namespace.table` over its Parquet data files (a pyarrow
dataset, so DuckDB pushes projections and filters down and reads lazily). Before the user's SQL runs,
every statement must be a plain query, and the connection is locked down: no file system access
(no COPY, ATTACH, read_csv of arbitrary paths), no extension install or autoload, configuration frozen.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from .errors import QueryError
from .names import DEFAULT_NAMESPACE, validate_identifier

if TYPE_CHECKING:
    from .local import LocalClient

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


def run_readonly_query(client: LocalClient, query: str, *, ref: str, namespace: str | None = None) -> pa.Table:
    check_read_only(query)
    default = validate_identifier(DEFAULT_NAMESPACE if namespace is None else namespace, "namespace")
    # One commit for every table of the query, even if the branch moves while the views are built.
    ref = client._pinned_ref(ref)
    con = duckdb.connect(":memory:")
    try:
        schemas = _expose_tables(con, client, ref)
        if default in schemas:
            con.execute(f"SET schema = '{default}'")
        for statement in _LOCKDOWN:
            con.execute(statement)
        try:
            relation = con.sql(query)
            # DuckDB 2 names it to_arrow_table; 1.x calls it arrow().
            return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        except duckdb.Error as exc:
            raise QueryError(str(exc).splitlines()[0]) from exc
    finally:
        con.close()


def _expose_tables(con: duckdb.DuckDBPyConnection, client: LocalClient, ref: str) -> set[str]:
    """Create a view `namespace.table` per table on `ref`; return the namespaces that hold views."""
    # A per-query prefix, so a hidden name never collides with a user's table.
    prefix = f"__wap_{uuid.uuid4().hex[:8]}_"
    schemas: set[str] = set()
    for index, info in enumerate(client.get_tables(ref)):
        schema, files = client.data_files(info.name, ref=ref, namespace=info.namespace)
        data = ds.dataset(files, schema=schema, format="parquet") if files else schema.empty_table()
        hidden = f"{prefix}{index}"
        con.register(hidden, data)
        try:
            # In the `memory` catalog explicitly, and IF NOT EXISTS: a namespace may be named like one of
            # DuckDB's own schemas or catalogs ("main", "temp", "system"). Names are validated identifiers.
            con.execute(f'CREATE SCHEMA IF NOT EXISTS memory."{info.namespace}"')
            con.execute(f'CREATE VIEW memory."{info.namespace}"."{info.name}" AS SELECT * FROM {hidden}')
        except duckdb.Error:
            # Reserved by DuckDB (information_schema, pg_catalog): that table cannot be named in SQL,
            # but it must not make every other table unqueryable.
            con.unregister(hidden)
            continue
        schemas.add(info.namespace)
    return schemas
