"""`wap branches`, `wap tags`, `wap tables`, `wap log`, `wap query`: inspect the lakehouse (read-only); `wap tag`
names a commit (the only write here: a tag moves no branch and changes no table)."""

from __future__ import annotations

from typing import Annotated, Any, cast

import typer
from rich.table import Table

from flows.cli.common import (
    EXIT_BAD_INPUT,
    Backend,
    JsonOutput,
    LakehousePath,
    Ref,
    app,
    cli_errors,
    fail,
    lakehouse_client,
    out,
    print_json,
    print_table,
)


@app.command()
def branches(backend: Backend = "local", lakehouse: LakehousePath = ".lakehouse", as_json: JsonOutput = False) -> None:
    """List branches and the commit each points to.

    --json: [{"branch": name, "commit": full hash}, ...]; the table shows 12-character hashes, which every
    --ref accepts as a prefix.
    """
    with cli_errors():
        found = list(lakehouse_client(backend, lakehouse).get_branches())
        if as_json:
            print_json([{"branch": b.name, "commit": b.hash} for b in found])
            return
        table = Table("branch", "commit")
        for b in found:
            table.add_row(b.name, b.hash[:12])
        print_table(table)


@app.command()
def tag(
    name: Annotated[str, typer.Argument(help="The tag's name (the rules of branch names).")],
    ref: Annotated[
        str | None, typer.Option("--ref", help="Branch, branch@commit or tag whose commit to name (default main).")
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Delete the tag NAME (never its commit).")] = False,
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Name the commit REF points to now (default main): `--ref NAME` then reads that state for ever. Tags never
    move and cannot be written to; a tag may not share a name with a branch. Exit 0, 2 bad name / unknown ref /
    the name is taken, 3 lakehouse unusable."""
    if delete and ref is not None:
        fail("error: --delete takes only the tag's NAME, not --ref", EXIT_BAD_INPUT)
    with cli_errors():
        client = lakehouse_client(backend, lakehouse)
        if delete:
            gone = client.get_tag(name)  # names its commit in the line below; TagNotFoundError is exit 2
            client.delete_tag(name)
            out.print(f"deleted tag {name} (was {gone.hash[:12]})", markup=False, highlight=False, soft_wrap=True)
            return
        made = client.create_tag(name, ref or "main")
        out.print(f"tagged {ref or 'main'} as {made.name}: {made.hash}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def tags(backend: Backend = "local", lakehouse: LakehousePath = ".lakehouse", as_json: JsonOutput = False) -> None:
    """List tags, the commit each names and when it was made.

    --json: [{"tag": name, "commit": full hash, "created": ISO 8601 UTC or null}, ...] (Bauplan records no time).
    """
    with cli_errors():
        found = lakehouse_client(backend, lakehouse).get_tags()
        if as_json:
            print_json(
                [{"tag": t.name, "commit": t.hash, "created": t.created_at and _utc_iso(t.created_at)} for t in found]
            )
            return
        table = Table("tag", "commit", "created")
        for t in found:
            table.add_row(t.name, t.hash[:12], "" if t.created_at is None else _utc_iso(t.created_at))
        print_table(table)


@app.command()
def tables(
    ref: Ref = "main", backend: Backend = "local", lakehouse: LakehousePath = ".lakehouse", as_json: JsonOutput = False
) -> None:
    """List the tables on a ref with their row counts.

    --json: [{"table": namespace.name, "rows": int or null, "columns": int, "metadata_location": str or null}, ...].
    """
    with cli_errors():
        found = lakehouse_client(backend, lakehouse).get_tables(ref)
        if as_json:
            print_json(
                [
                    {
                        "table": t.fqn,
                        "rows": t.records,
                        "columns": len(t.fields),
                        "metadata_location": t.metadata_location,
                    }
                    for t in found
                ]
            )
            return
        table = Table("table", "rows", "columns", "metadata_location")
        for t in found:
            table.add_row(
                t.fqn, "" if t.records is None else str(t.records), str(len(t.fields)), t.metadata_location or ""
            )
        print_table(table)


def _utc_iso(moment) -> str:
    """ISO 8601 in UTC with an explicit offset (a naive time is the catalog's UTC)."""
    from datetime import UTC

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


@app.command()
def log(
    ref: Ref = "main",
    limit: Annotated[int, typer.Option(help="Most recent commits to show.")] = 20,
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
    as_json: JsonOutput = False,
) -> None:
    """Show the commits of a ref, newest first, with their properties; `kind` marks publishes and reverts (REVERT
    ... to <commit>: <reason>).

    --json: [{"commit": full hash, "time": ISO 8601 UTC, "author", "message", "properties": {key: value}}, ...].
    """
    with cli_errors():
        commits = list(lakehouse_client(backend, lakehouse).get_commits(ref, limit=limit))
        if as_json:
            print_json(
                [
                    {
                        "commit": c.hash,
                        "time": _utc_iso(c.authored_date),
                        "author": c.author,
                        "message": c.message,
                        "properties": dict(sorted(c.properties.items())),
                    }
                    for c in commits
                ]
            )
            return
        table = Table("commit", "time", "author", "kind", "message", "properties")
        for c in commits:
            props = "\n".join(f"{k}={v}" for k, v in sorted(c.properties.items()))
            table.add_row(c.hash[:12], _utc_iso(c.authored_date), c.author, commit_kind(c.properties), c.message, props)
        print_table(table)


def commit_kind(props: dict[str, str]) -> str:
    """What the gate made this commit for, at a glance: a publish (of a dataset or a group) or a revert (with why)."""
    if "wap.revert.to" in props:
        what = props.get("wap.revert.group") or props.get("wap.revert.datasets", "")
        return f"REVERT {what} to {props['wap.revert.to'][:12]}: {props.get('wap.revert.reason', '')}"
    if props.get("wap.group"):
        return f"publish group {props['wap.group']}"
    if props.get("wap.dataset"):
        return f"publish {props['wap.dataset']}"
    return ""


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="A read-only SELECT over the ref's tables.")],
    ref: Ref = "main",
    max_rows: Annotated[
        int | None, typer.Option(help="Rows to print (default: 50 in the table, every row with --json).")
    ] = None,
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
    as_json: JsonOutput = False,
) -> None:
    """Run read-only SQL (DuckDB) over the tables of a ref.

    --json prints an array of row objects keyed by column name. Values JSON cannot hold are written as:
    timestamps, dates and times as ISO 8601 strings (with their offset when the column has a time zone);
    decimals as strings (exact); binary as base64 strings; NaN, Infinity and -Infinity as the strings
    "NaN", "Infinity", "-Infinity" (SQL NULL is null); durations and intervals as ISO 8601 durations;
    lists as arrays, structs and string-keyed maps as objects.
    """
    if max_rows is not None and max_rows < 0:
        fail("error: --max-rows must be 0 or more", EXIT_BAD_INPUT)
    with cli_errors():
        client = lakehouse_client(backend, lakehouse)
        if as_json:
            # Only the rows asked for are fetched (on Bauplan, only they cross the network).
            print_json(arrow_to_json(client.query(sql, ref=ref, max_rows=max_rows)))
            return
        shown = 50 if max_rows is None else max_rows
        # One row more than shown, to know whether there are more, never the whole result.
        print_table(arrow_to_rich(client.query(sql, ref=ref, max_rows=shown + 1), shown))


def arrow_to_rich(result, max_rows: int) -> Table:
    table = Table(*result.column_names)
    for row in result.slice(0, max_rows).to_pylist():
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    if result.num_rows > max_rows:
        table.caption = f"first {max_rows} rows (more not fetched: --max-rows N to see more)"
    return table


def arrow_to_json(result) -> list[dict[str, object]]:
    """Rows of an Arrow table as JSON-ready dicts (see `wap query --help` for how each type is written).

    Rows are built by position, not with `to_pylist()`: a query may return two columns with the same name.
    """
    names = result.column_names
    columns = [result.column(i).to_pylist() for i in range(result.num_columns)]
    return [{names[i]: json_value(columns[i][r]) for i in range(len(names))} for r in range(result.num_rows)]


def json_value(value: object) -> object:
    """One Python value from Arrow, as a value `json.dumps(allow_nan=False)` accepts."""
    import base64
    import datetime as dt
    import decimal
    import math

    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _iso_duration(0, value.days, value.seconds * 10**9 + value.microseconds * 1000)
    if all(hasattr(value, a) for a in ("months", "days", "nanoseconds")):  # Arrow's month-day-nano interval
        interval: Any = value
        return _iso_duration(interval.months, interval.days, interval.nanoseconds)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [json_value(v) for v in value]
        if items and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value):
            pairs = cast("list[list[object]]", items)  # each (key, value) became [key, value]
            return {k: v for k, v in pairs}  # an Arrow map: [(key, value), ...]
        return items
    return str(value)  # e.g. UUID


def _iso_duration(months: int, days: int, nanoseconds: int) -> str:
    """`P<months>M<days>DT<seconds>S`; a wholly negative span gets one leading minus (ISO 8601-2)."""
    parts = (months, days, nanoseconds)
    sign = "-" if all(p <= 0 for p in parts) and any(p < 0 for p in parts) else ""
    if sign:
        months, days, nanoseconds = -months, -days, -nanoseconds
    whole, frac = divmod(nanoseconds, 10**9)
    seconds = f"{whole}.{frac:09d}".rstrip("0") if frac else str(whole)
    return f"{sign}P{months}M{days}DT{seconds}S"
