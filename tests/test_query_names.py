"""`query` returns the stored values for every column name the lakehouse accepts (issue 10, item 5).

pyiceberg writes `first name` as `first_x20name` in Parquet (and `1st` as `_1st`, nested fields too), so
views that match Parquet columns by name showed NULL. Every value is compared with pyiceberg's own read
(`client.scan`), through the Python API and through `wap query` as a subprocess.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gate_fixtures import REPO

from flows.lakehouse import MAIN, connect
from flows.lakehouse.local import LocalClient
from flows.lakehouse.sql import _expose_tables

NAMES = ["first name", "order-id", "1st", "emoji_🚢", 'a"b', "Ünïcödé", "x.y", "select", "plain"]
NESTED = "nested field"  # a struct whose own fields need sanitizing too
LISTED = "list-of"  # a list of such structs
ROWS = 300


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rows(start: int, count: int) -> pa.Table:
    """Every column has values and NULLs; each name's values differ from the others'."""
    ids = range(start, start + count)

    def col(values, every: int, offset: int, type_: pa.DataType) -> pa.Array:
        return pa.array([None if i % every == offset else v for i, v in zip(ids, values, strict=True)], type_)

    return pa.table(
        {
            "id": pa.array(list(ids), pa.int64()),
            "first name": col([f"name {i}" for i in ids], 5, 0, pa.string()),
            "order-id": col([i * 10 for i in ids], 7, 3, pa.int64()),
            "1st": col([i / 4 for i in ids], 4, 1, pa.float64()),
            "emoji_🚢": col([f"🚢{i}" for i in ids], 6, 2, pa.string()),
            'a"b': col([f'q"{i}' for i in ids], 3, 0, pa.string()),
            "Ünïcödé": col([-i for i in ids], 8, 5, pa.int64()),
            "x.y": col([i % 2 == 0 for i in ids], 9, 4, pa.bool_()),
            "select": col([dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in ids], 10, 7, pa.date32()),
            "plain": col([f"p{i}" for i in ids], 11, 1, pa.string()),
            NESTED: col(
                [{"in ner": None if i % 2 else i, "2nd-part": f"s{i}"} for i in ids],
                11,
                6,
                pa.struct([("in ner", pa.int64()), ("2nd-part", pa.string())]),
            ),
            LISTED: col([[{"p q": i}, {"p q": None}] for i in ids], 13, 9, pa.list_(pa.struct([("p q", pa.int64())]))),
        }
    )


def by_id(table: pa.Table) -> list[dict]:
    return table.sort_by("id").to_pylist()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalClient, Path]:
    """main: bauplan.t (two imports, so two data files) and bauplan.empty (same columns, no rows)."""
    root = tmp_path_factory.mktemp("query-names")
    first, second = root / "src" / "first.parquet", root / "src" / "second.parquet"
    first.parent.mkdir()
    pq.write_table(rows(0, ROWS), first)
    pq.write_table(rows(ROWS, ROWS), second)
    client = connect("local", root / "lh")
    client.create_table("t", str(first), branch=MAIN)
    client.import_data("t", str(first), branch=MAIN)
    client.import_data("t", str(second), branch=MAIN)
    client.create_table("empty", str(first), branch=MAIN)
    return client, root / "lh"


def test_the_data_really_is_stored_under_other_names(lake) -> None:
    """Guards the premise: if pyiceberg stopped sanitizing, this file would test nothing."""
    client, _ = lake
    _, files = client.data_files("t", ref=MAIN)
    assert len(files) == 2
    stored = pq.read_schema(files[0]).names
    assert "first_x20name" in stored and "first name" not in stored and "_1st" in stored


def test_every_value_of_every_column_matches_pyiceberg(lake) -> None:
    client, _ = lake
    expected = client.scan("t", ref=MAIN)
    got = client.query("SELECT * FROM t", ref=MAIN)
    assert got.column_names == expected.column_names == ["id", *NAMES, NESTED, LISTED]
    assert got.num_rows == expected.num_rows == 2 * ROWS
    expected_rows, got_rows = by_id(expected), by_id(got)
    for name in [*NAMES, NESTED]:  # the test data has both values and NULLs in each column
        values = [r[name] for r in expected_rows]
        assert None in values and any(v is not None for v in values), name
    assert [r[NESTED]["in ner"] for r in expected_rows if r[NESTED]].count(None) > 0
    for want, have in zip(expected_rows, got_rows, strict=True):
        assert have == want


@pytest.mark.parametrize("name", [*NAMES, NESTED])
def test_each_name_in_select_where_and_order_by(lake, name: str) -> None:
    client, _ = lake
    expected = by_id(client.scan("t", ref=MAIN))
    want = [{"id": r["id"], name: r[name]} for r in expected if r[name] is not None]
    got = client.query(f"SELECT id, {quote(name)} FROM t WHERE {quote(name)} IS NOT NULL ORDER BY id", ref=MAIN)
    assert got.column_names == ["id", name]
    assert got.to_pylist() == want
    assert want  # the filter kept rows


def test_struct_fields_with_sanitized_names(lake) -> None:
    client, _ = lake
    got = client.query(f'SELECT id, {quote(NESTED)}."in ner" AS v FROM t WHERE id = 4', ref=MAIN)
    assert got.to_pylist() == [{"id": 4, "v": 4}]


def test_projection_and_filter_still_reach_the_parquet_scan(lake) -> None:
    """The renaming view must not stop DuckDB from pushing columns and filters into the lazy scan."""
    client, _ = lake
    con = duckdb.connect(":memory:")
    try:
        _expose_tables(con, client, client._pinned_ref(MAIN))
        plan = "\n".join(
            row[1] for row in con.sql('EXPLAIN SELECT "first name" FROM bauplan.t WHERE "order-id" = 50').fetchall()
        )
    finally:
        con.close()
    scan = plan[plan.index("ARROW_SCAN") :]
    assert "Filters:" in scan and "order_x2Did" in scan, plan
    assert "Projections: first_x20name" in scan, plan
    assert "emoji" not in scan, plan  # columns the query does not name are not read


def test_empty_table_has_the_names_and_no_rows(lake) -> None:
    client, _ = lake
    got = client.query("SELECT * FROM empty", ref=MAIN)
    assert got.num_rows == 0 and got.column_names == ["id", *NAMES, NESTED, LISTED]
    assert client.query('SELECT count("first name") AS n FROM empty', ref=MAIN).to_pylist() == [{"n": 0}]


def test_files_written_under_an_older_schema(tmp_path: Path) -> None:
    """A column added later is NULL in the older file's rows; a renamed column keeps its values (same field id)."""
    from pyiceberg.types import StringType

    source = tmp_path / "old.parquet"
    pq.write_table(pa.table({"id": [1, 2], "first name": ["a", None], "order-id": [10, 20]}), source)
    client = connect("local", tmp_path / "lh")
    client.create_table("t", str(source), branch=MAIN)
    client.import_data("t", str(source), branch=MAIN)
    # No lakehouse API evolves a schema; pyiceberg's does, through the branch's catalog.
    table = client._catalog(MAIN, write=True).load_table(("bauplan", "t"))
    with table.update_schema() as update:
        update.add_column("late 🚢", StringType())
        update.rename_column("order-id", "order #")
    newer = tmp_path / "new.parquet"
    pq.write_table(
        pa.table({"id": [3], "first name": ["c"], "order #": [30], "late 🚢": ["x y"]}),
        newer,
    )
    client.import_data("t", str(newer), branch=MAIN)

    expected = client.scan("t", ref=MAIN)
    got = client.query("SELECT * FROM t", ref=MAIN)
    assert got.column_names == expected.column_names == ["id", "first name", "order #", "late 🚢"]
    assert by_id(got) == by_id(expected)
    assert by_id(got) == [
        {"id": 1, "first name": "a", "order #": 10, "late 🚢": None},
        {"id": 2, "first name": None, "order #": 20, "late 🚢": None},
        {"id": 3, "first name": "c", "order #": 30, "late 🚢": "x y"},
    ]
    later = client.query('SELECT id FROM t WHERE "order #" >= 20 ORDER BY id', ref=MAIN)
    assert later.to_pylist() == [{"id": 2}, {"id": 3}]


def wap(*args: str) -> subprocess.CompletedProcess:
    """`uv run wap ARGS` (the installed console script), as users run it."""
    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"}
    uv = shutil.which("uv")
    command = [uv, "run", "--frozen", "wap", *args] if uv else [sys.executable, "-m", "flows.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=180)


def rich_rows(output: str) -> tuple[list[str], list[list[str]]]:
    """The header and body cells of the one Rich table in `output` (heavy header rule, light body rules)."""
    header = [c.strip() for c in next(line for line in output.splitlines() if "┃" in line).strip("┃ ").split("┃")]
    body = [[c.strip() for c in line.strip().strip("│").split("│")] for line in output.splitlines() if "│" in line]
    return header, body


@pytest.mark.subprocess
def test_cli_query_shows_the_stored_values(lake) -> None:
    client, lakehouse = lake
    columns = ", ".join(quote(n) for n in ["id", *NAMES])
    sql = f"SELECT {columns} FROM t WHERE id < 12 ORDER BY id"
    result = wap("query", sql, "--lakehouse", str(lakehouse), "--max-rows", "12")
    assert result.returncode == 0, result.stdout + result.stderr
    header, body = rich_rows(result.stdout)
    assert header == ["id", *NAMES]
    expected = [r for r in by_id(client.scan("t", ref=MAIN)) if r["id"] < 12]
    want = [["" if r[n] is None else str(r[n]) for n in ["id", *NAMES]] for r in expected]
    assert body == want
    assert sum(cell != "" for row in body for cell in row[1:]) > 50  # mostly values, not the blanks of NULL


def test_a_missing_data_file_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    """The views read every file's footer (to match its columns): a lost file is named, not a traceback.

    (`data_files` checks first now; `sql` also turns a footer it cannot read into StorageError.)
    """
    from flows.lakehouse import StorageError

    source = tmp_path / "s.parquet"
    pq.write_table(pa.table({"first name": ["a"]}), source)
    client = connect("local", tmp_path / "lh")
    client.create_table("t", str(source), branch=MAIN)
    client.import_data("t", str(source), branch=MAIN)
    _, files = client.data_files("t", ref=MAIN)
    Path(files[0]).unlink()
    with pytest.raises(StorageError, match=re.escape(files[0])):
        client.query("SELECT * FROM t", ref=MAIN)


def test_an_unreadable_footer_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    from flows.lakehouse import StorageError

    source = tmp_path / "s.parquet"
    pq.write_table(pa.table({"first name": ["a"]}), source)
    client = connect("local", tmp_path / "lh")
    client.create_table("t", str(source), branch=MAIN)
    client.import_data("t", str(source), branch=MAIN)
    _, files = client.data_files("t", ref=MAIN)
    Path(files[0]).write_bytes(b"not parquet")
    with pytest.raises(StorageError, match=f"cannot read data file {re.escape(files[0])} of table bauplan.t"):
        client.query("SELECT * FROM t", ref=MAIN)
