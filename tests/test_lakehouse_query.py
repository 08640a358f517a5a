"""`query`: read-only SQL (DuckDB) over one ref's tables of the embedded lakehouse."""

from __future__ import annotations

from pathlib import Path

import pytest
from lakehouse_worker import count_files, write_csv

from flows.lakehouse import MAIN, InvalidNameError, QueryError, connect
from flows.lakehouse.local import LocalClient


@pytest.fixture(scope="module")
def lh(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalClient, str]:
    """main: bauplan.t (10 rows, 3 at `old`), other.u (4 rows), bauplan.empty (no rows). Read-only tests."""
    root = tmp_path_factory.mktemp("query")
    client = connect("local", root / "lh")
    first = write_csv(root / "src" / "t1.csv", 3)
    second = write_csv(root / "src" / "t2.csv", 7, start=3)
    client.create_table("t", str(first), branch=MAIN)
    client.import_data("t", str(first), branch=MAIN)
    old = client.get_branch(MAIN).hash
    client.import_data("t", str(second), branch=MAIN)
    u = write_csv(root / "src" / "u.csv", 4, tag=1)
    client.create_table("u", str(u), branch=MAIN, namespace="other")
    client.import_data("u", str(u), branch=MAIN, namespace="other")
    client.create_table("empty", str(u), branch=MAIN)
    return client, old


def scalar(client: LocalClient, sql: str, **kwargs) -> object:
    table = client.query(sql, **kwargs)
    assert table.num_rows == 1 and table.num_columns == 1
    return table.column(0)[0].as_py()


def test_qualified_and_bare_names_in_the_default_namespace(lh) -> None:
    client, _ = lh
    assert scalar(client, "SELECT count(*) FROM bauplan.t", ref=MAIN) == 10
    assert scalar(client, "SELECT count(*) FROM t", ref=MAIN) == 10
    assert scalar(client, "SELECT count(*) FROM other.u", ref=MAIN) == 4


def test_namespace_argument_sets_the_default_for_bare_names(lh) -> None:
    client, _ = lh
    assert scalar(client, "SELECT count(*) FROM u", ref=MAIN, namespace="other") == 4
    with pytest.raises(QueryError):
        client.query("SELECT count(*) FROM u", ref=MAIN)  # u is not in the default namespace


def test_query_at_a_past_commit(lh) -> None:
    client, old = lh
    assert scalar(client, "SELECT count(*) FROM t", ref=f"main@{old}") == 3
    with pytest.raises(QueryError):
        client.query("SELECT * FROM other.u", ref=f"main@{old}")  # created after `old`


def test_joins_filters_and_aggregates(lh) -> None:
    client, _ = lh
    result = client.query(
        "SELECT t.id, u.tag FROM t JOIN other.u AS u USING (id) WHERE t.id >= 1 ORDER BY t.id", ref=MAIN
    )
    assert result.to_pylist() == [{"id": 1, "tag": 1}, {"id": 2, "tag": 1}, {"id": 3, "tag": 1}]


def test_table_without_rows_has_its_columns(lh) -> None:
    client, _ = lh
    result = client.query("SELECT * FROM empty", ref=MAIN)
    assert result.num_rows == 0 and result.column_names == ["id", "x", "name", "tag"]


def test_other_read_only_forms_work(lh) -> None:
    client, _ = lh
    assert client.query("FROM t", ref=MAIN).num_rows == 10
    assert scalar(client, "WITH a AS (SELECT id FROM t) SELECT max(id) FROM a", ref=MAIN) == 9
    assert scalar(client, "SELECT count(*) FROM t;", ref=MAIN) == 10


REFUSED = [
    "INSERT INTO t VALUES (1, 1.0, 'a', 0)",
    "DELETE FROM t",
    "UPDATE t SET id = 0",
    "DROP TABLE t",
    "DROP VIEW t",
    "CREATE TABLE x AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "CREATE MACRO m(a) AS a",
    "ALTER VIEW t RENAME TO t2",
    "ATTACH '{tmp}/x.db' AS x",
    "DETACH memory",
    "COPY t TO '{tmp}/out.csv'",
    "COPY (SELECT 1) TO '{tmp}/out.parquet'",
    "EXPORT DATABASE '{tmp}/export'",
    "PRAGMA database_list",
    "SET threads = 1",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CALL pragma_version()",
    "CHECKPOINT",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/hosts')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM read_parquet('{tmp}/*.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM '{tmp}/src/t1.csv'",
    "SELECT * FROM t WHERE id IN (SELECT 1 FROM read_csv('/etc/passwd'))",
    "SELECT 1; DROP TABLE t",
    "SELECT 1; INSERT INTO t VALUES (1, 1.0, 'a', 0)",
    "SELECT 1; COPY t TO '{tmp}/out2.csv'",
    "SELECT * FROM query('DROP TABLE t')",
    "",
    "   ;  ",
    "this is not sql",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_writes_file_access_and_smuggling_are_refused(lh, sql: str) -> None:
    client, _ = lh
    tmp = client.root.parent
    files = count_files(tmp)
    head = client.get_branch(MAIN).hash

    with pytest.raises(QueryError):
        client.query(sql.format(tmp=tmp), ref=MAIN)

    assert count_files(tmp) == files  # nothing exported, copied or attached
    assert client.get_branch(MAIN).hash == head
    assert scalar(client, "SELECT count(*) FROM t", ref=MAIN) == 10


def test_invalid_ref_or_namespace_is_not_a_query_error(lh) -> None:
    client, _ = lh
    with pytest.raises(InvalidNameError):
        client.query("SELECT 1", ref=MAIN, namespace="x'; DROP")


def test_namespaces_named_like_duckdb_schemas_do_not_break_queries(lakehouse: LocalClient, tmp_path: Path) -> None:
    source = str(write_csv(tmp_path / "s.csv", 2))
    for namespace in ("main", "information_schema", "temp"):
        lakehouse.create_table("t", source, branch=MAIN, namespace=namespace)
    lakehouse.create_table("t", source, branch=MAIN)
    lakehouse.import_data("t", source, branch=MAIN)

    # Every other table stays queryable, and a namespace called "main" works like any other.
    assert scalar(lakehouse, "SELECT count(*) FROM t", ref=MAIN) == 2
    assert scalar(lakehouse, "SELECT count(*) FROM main.t", ref=MAIN) == 0
    assert scalar(lakehouse, "SELECT count(*) FROM memory.temp.t", ref=MAIN) == 0
    with pytest.raises(QueryError):
        lakehouse.query("SELECT * FROM information_schema.t", ref=MAIN)
