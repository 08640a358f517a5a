"""`wap`: the command line over the gate and the lakehouse (a thin layer: the flow and the CLI share code).

Exit codes: 0 ok / published, 1 blocked by the audit, 2 bad usage or input, 3 not published for another
reason (merge conflict, concurrent update, backend unavailable), 4 unexpected internal error.
Heavy libraries (Prefect, GX, pyiceberg) are imported inside the commands, so `wap --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

EXIT_OK, EXIT_BLOCKED, EXIT_BAD_INPUT, EXIT_NOT_PUBLISHED, EXIT_INTERNAL = 0, 1, 2, 3, 4

app = typer.Typer(
    help="Write-Audit-Publish gate: new data lands on a branch, is audited by Great Expectations, "
    "and is merged into main only if the audit passes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

Backend = Annotated[
    str, typer.Option("--backend", envvar="WAP_BACKEND", help="Lakehouse backend: local (embedded) or bauplan.")
]
LakehousePath = Annotated[
    str, typer.Option("--lakehouse", envvar="WAP_LAKEHOUSE", help="Directory of the embedded lakehouse.")
]
Ref = Annotated[str, typer.Option("--ref", help="Branch, or branch@commit for a past state.")]


def fail(message: str, code: int) -> NoReturn:
    if isinstance(sys.stderr, LineTrackingStream) and not sys.stderr.at_line_start:
        sys.stderr.write("\n")  # e.g. Prefect's "--- Error logging to API ---" ends without one
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class LineTrackingStream:
    """A text stream (sys.stderr) that remembers whether what was last written to it ended a line.

    Prefect's API log worker writes its own failure to ``sys.stderr`` without a newline; our one-line error
    must start a line of its own, not be glued to "All connection attempts failed".
    """

    def __init__(self, stream) -> None:
        self._stream = stream
        self.at_line_start = True

    def write(self, text: str) -> int:
        if text:
            self.at_line_start = text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _track_stderr() -> None:
    if not isinstance(sys.stderr, LineTrackingStream):
        sys.stderr = LineTrackingStream(sys.stderr)


def exit_code_for(exc: BaseException) -> int:
    from .audit import AuditConfigError
    from .datasets import DatasetError
    from .lakehouse import (
        BackendUnavailableError,
        CatalogUnusableError,
        ConcurrentUpdateError,
        LakehouseError,
        MergeConflictError,
        StorageError,
    )

    # Only a gate run raises AuditFailedError, so only look for it once the flow module is loaded:
    # an error exit of a cheap command should not pay for importing Prefect.
    wap_module = sys.modules.get("flows.wap")
    if wap_module is not None and isinstance(exc, wap_module.AuditFailedError):
        return EXIT_BLOCKED
    if isinstance(
        exc, MergeConflictError | ConcurrentUpdateError | BackendUnavailableError | CatalogUnusableError | StorageError
    ):
        return EXIT_NOT_PUBLISHED
    if isinstance(exc, LakehouseError | DatasetError | AuditConfigError | ValueError):
        return EXIT_BAD_INPUT
    return EXIT_INTERNAL


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextmanager
def cli_errors(*, gate: bool = False) -> Iterator[None]:
    """Expected failures become one line on stderr and a documented exit code, never a traceback.

    Only the commands that publish (`run`, `demo`: ``gate=True``) say "not published" for exit 3; a command
    that publishes nothing (`query`, `tables`, `gc`, ...) says "error" for the same causes.
    """
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        code = exit_code_for(exc)
        if code == EXIT_INTERNAL and os.environ.get("WAP_DEBUG"):
            raise
        prefix = {EXIT_BLOCKED: "blocked", EXIT_INTERNAL: "internal error"}
        if gate:
            prefix[EXIT_NOT_PUBLISHED] = "not published"
        message = f"{prefix.get(code, 'error')}: {one_line(exc)}"
        if _prefect_is_gone(exc):
            _exit_now(message, code)
        _drain_prefect_services()
        _silence_prefect_after_this()
        fail(message, code)


def _exit_now(message: str, code: int) -> NoReturn:
    """Print the error line and end the process at once, skipping interpreter shutdown.

    Only for a gate whose Prefect server has gone: everything the gate owns is settled by then (the rollback
    ran, the lease file is removed, every SQLite commit is durable), and all that shutdown would still do is
    let Prefect's events worker try to deliver each queued event to the dead server, ~7 s per event.
    """
    _silence_prefect_after_this()
    with suppress(Exception):
        sys.stdout.flush()
    if isinstance(sys.stderr, LineTrackingStream) and not sys.stderr.at_line_start:
        sys.stderr.write("\n")
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    with suppress(Exception):
        sys.stderr.flush()
    os._exit(code)


def _prefect_is_gone(exc: BaseException) -> bool:
    wap_module = sys.modules.get("flows.wap")
    return wap_module is not None and isinstance(exc, wap_module.PrefectUnavailableError)


def _drain_prefect_services() -> None:
    """Let Prefect's background workers (events, logs) finish first, so our message is the last line."""
    if "prefect" not in sys.modules:
        return
    from prefect._internal.concurrency.services import QueueService

    with suppress(Exception):  # best effort: never mask the real error
        QueueService.drain_all(timeout=10)


def _silence_prefect_after_this() -> None:
    """Our error line is the last line on stderr: Prefect's services may still complain at exit (about a
    server that has gone, say) once it is printed, so its logging and its API log worker's own messages
    (printed only while ``logging.raiseExceptions``) are switched off first."""
    if "prefect" not in sys.modules:
        return
    import logging

    logging.raiseExceptions = False
    logging.disable(logging.CRITICAL)


def _client(backend: str, lakehouse: str):
    from .lakehouse import connect

    return connect(backend, lakehouse)


def _quiet_prefect_tracebacks() -> None:
    """Prefect logs failed task runs with their traceback; on the console, the message is enough."""
    import logging

    class DropTraceback(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.exc_info = None
            record.exc_text = None
            return True

    from prefect.logging.configuration import PROCESS_LOGGING_CONFIG, setup_logging
    from prefect.logging.handlers import PrefectConsoleHandler

    if not PROCESS_LOGGING_CONFIG:
        setup_logging()
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(f, DropTraceback) for f in handler.filters
            ):
                handler.addFilter(DropTraceback())


# ----------------------------------------------------------------------------------------- inspection
JsonOutput = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON document (an array of objects, keys as the table's columns) on stdout, nothing else.",
    ),
]


def print_table(table: Table) -> None:
    """Print a table whose every value can be copied: never cut with "…".

    At a terminal, long values fold onto the next line of their cell. Anywhere else (a pipe, a file) the
    table is as wide as its longest value: the width of the terminal the user may not even have is no
    reason to cut a metadata location or a flow run id.
    """
    for column in table.columns:
        column.overflow = "fold"
    if out.is_terminal:
        out.print(table)
        return
    wide = Console(file=out.file, width=1_000_000, color_system=None, highlight=False)
    natural = wide.measure(table).maximum  # the widest any row needs, box and padding included
    Console(file=out.file, width=max(natural, 1), color_system=None, highlight=False).print(table)


def print_json(document: object) -> None:
    """One JSON document on stdout (plain `print`: Rich would wrap long lines and highlight)."""
    import json

    print(json.dumps(document, ensure_ascii=False, allow_nan=False, indent=2))


@app.command()
def branches(backend: Backend = "local", lakehouse: LakehousePath = ".lakehouse", as_json: JsonOutput = False) -> None:
    """List branches and the commit each points to.

    --json: [{"branch": name, "commit": full hash}, ...]; the table shows 12-character hashes, which every
    --ref accepts as a prefix.
    """
    with cli_errors():
        found = _client(backend, lakehouse).get_branches()
        if as_json:
            print_json([{"branch": b.name, "commit": b.hash} for b in found])
            return
        table = Table("branch", "commit")
        for b in found:
            table.add_row(b.name, b.hash[:12])
        print_table(table)


@app.command()
def tables(
    ref: Ref = "main", backend: Backend = "local", lakehouse: LakehousePath = ".lakehouse", as_json: JsonOutput = False
) -> None:
    """List the tables on a ref with their row counts.

    --json: [{"table": namespace.name, "rows": int or null, "columns": int, "metadata_location": str or null}, ...].
    """
    with cli_errors():
        found = _client(backend, lakehouse).get_tables(ref)
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
    """Show the commits of a ref, newest first, with their properties.

    --json: [{"commit": full hash, "time": ISO 8601 UTC, "author", "message", "properties": {key: value}}, ...].
    """
    with cli_errors():
        commits = _client(backend, lakehouse).get_commits(ref, limit=limit)
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
        table = Table("commit", "time", "author", "message", "properties")
        for c in commits:
            props = "\n".join(f"{k}={v}" for k, v in sorted(c.properties.items()))
            table.add_row(c.hash[:12], _utc_iso(c.authored_date), c.author, c.message, props)
        print_table(table)


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
        result = _client(backend, lakehouse).query(sql, ref=ref)
        if as_json:
            rows = result if max_rows is None else result.slice(0, max_rows)
            print_json(arrow_to_json(rows))
            return
        print_table(arrow_to_rich(result, 50 if max_rows is None else max_rows))


def arrow_to_rich(result, max_rows: int) -> Table:
    table = Table(*result.column_names)
    for row in result.slice(0, max_rows).to_pylist():
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    if result.num_rows > max_rows:
        table.caption = f"{max_rows} of {result.num_rows} rows"
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
        return _iso_duration(value.months, value.days, value.nanoseconds)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [json_value(v) for v in value]
        if items and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value):
            return {k: v for k, v in items}  # an Arrow map: [(key, value), ...]
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


# --------------------------------------------------------------------------------------------- gate
def _run_one(dataset: str, source: str | None, branch: str | None, backend: str, lakehouse: str, keep: bool):
    from .wap import run_gate

    return run_gate(dataset, source, branch, backend, lakehouse, keep_failed_branch=keep)


@app.command()
def run(
    dataset: Annotated[str | None, typer.Argument(help="Dataset declared in gx/datasets.yml.")] = None,
    all_datasets: Annotated[bool, typer.Option("--all", help="Every declared dataset, concurrently.")] = False,
    source: Annotated[str | None, typer.Option(help="Override the declared source URI.")] = None,
    branch: Annotated[str | None, typer.Option(help="Branch name (default <user>.wap_<dataset>_<id>).")] = None,
    keep_failed_branch: Annotated[bool, typer.Option(help="Keep the branch of a failed run.")] = False,
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Write, audit and publish a dataset: exit 0 published, 1 blocked, 2 bad input, 3 not published."""
    if all_datasets == (dataset is not None):
        fail("error: give a DATASET or --all (not both)", EXIT_BAD_INPUT)
    if all_datasets and (source or branch):
        fail("error: --source and --branch apply to one dataset, not --all", EXIT_BAD_INPUT)
    _track_stderr()
    with cli_errors(gate=True):
        _check_backend(backend)
        _preflight(dataset, branch)
        from .wap import check_prefect_api

        check_prefect_api()  # before any branch exists: an unreachable API costs seconds and writes nothing
        _quiet_prefect_tracebacks()
        if not all_datasets:
            outcome = _run_one(dataset, source, branch, backend, lakehouse, keep_failed_branch)
            out.print(f"published {outcome.dataset}: {outcome.rows} rows at commit {outcome.published_commit}")
            return
        from .datasets import load_datasets

        names = sorted(load_datasets())
        with ThreadPoolExecutor(max_workers=min(8, len(names)) or 1) as pool:
            futures = {n: pool.submit(_run_one, n, None, None, backend, lakehouse, keep_failed_branch) for n in names}
        summary = Table("dataset", "outcome", "rows", "commit / reason")
        worst = EXIT_OK
        for name, future in futures.items():
            exc = future.exception()
            if exc is None:
                o = future.result()
                summary.add_row(name, "published", str(o.rows), o.published_commit[:12])
            else:
                code = exit_code_for(exc)
                worst = max(worst, code)
                label = {EXIT_BLOCKED: "blocked", EXIT_NOT_PUBLISHED: "not published"}.get(code, "error")
                summary.add_row(name, label, "", one_line(exc)[:200])
        print_table(summary)
        if worst:
            raise typer.Exit(worst)


def _preflight(dataset: str | None, branch: str | None) -> None:
    """Reject an unknown dataset or a bad branch name before Prefect or the lakehouse is touched."""
    from .datasets import get_dataset, load_datasets
    from .wap import validate_gate_branch

    if dataset is None:
        load_datasets()
    else:
        get_dataset(dataset)
    if branch is not None:
        validate_gate_branch(branch)


def _check_backend(backend: str) -> None:
    from .lakehouse import BACKENDS, InvalidNameError

    if backend not in BACKENDS:
        raise InvalidNameError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")


@app.command()
def validate(
    dataset: Annotated[str, typer.Argument(help="Dataset whose checkpoint to run.")],
    source: Annotated[str, typer.Option(help="CSV or Parquet file to audit (nothing is written).")],
) -> None:
    """Run the dataset's audit on a file, without touching the lakehouse: exit 0 pass, 1 fail, 2 bad input."""
    with cli_errors():
        from .audit import describe_failures, run_checkpoint, summarize_failures, table_to_dataframe
        from .datasets import get_dataset
        from .lakehouse.sources import read_source
        from .reports import expectation_rows

        spec = get_dataset(dataset)
        result = run_checkpoint(
            table_to_dataframe(read_source(source)), spec.checkpoint, run_name=f"{dataset}-validate"
        )
        table = Table("status", "expectation", "column", "observed", "unexpected", "sample")
        for row in expectation_rows(result):
            table.add_row(
                row["status"],
                row["description"],
                row["column"],
                row["observed_value"],
                str(row["unexpected_count"]),
                row["sample_unexpected_values"],
            )
        print_table(table)
        if result.data_docs_url:
            out.print(f"data docs: {result.data_docs_url}", soft_wrap=True)
        if not result.success:
            err.print(describe_failures(result), markup=False, highlight=False, soft_wrap=True)
            fail(f"blocked: {dataset}: {summarize_failures(result)}", EXIT_BLOCKED)
        out.print(f"passed: {result.statistics['successful']}/{result.statistics['evaluated']} expectations")


@app.command()
def demo(
    lakehouse: LakehousePath = ".lakehouse",
    rows: Annotated[int, typer.Option(help="Rows of generated titanic-shaped data.")] = 891,
) -> None:
    """Offline demo: the gate publishes clean generated data, then blocks a corrupted copy."""
    _track_stderr()
    with cli_errors(gate=True):
        from .wap import check_prefect_api

        check_prefect_api()
        _quiet_prefect_tracebacks()
        from .demo import run_demo

        run_demo(Path(lakehouse), rows=rows, console=out)


@app.command()
def serve(
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Serve one Prefect deployment per declared dataset (with its schedule), runnable from the Prefect UI."""
    with cli_errors():
        _check_backend(backend)
        from .wap import check_prefect_api

        check_prefect_api()
        from prefect import serve as prefect_serve

        from .deployments import build_deployments

        deployments = build_deployments(backend=backend, lakehouse=lakehouse)
        out.print(f"serving {len(deployments)} deployment(s): " + ", ".join(f"wap/{d.name}" for d in deployments))
        prefect_serve(*deployments)


@app.command()
def gc(
    older_than: Annotated[str, typer.Option(help="Only branches at least this old: 90s, 30m, 24h, 7d.")] = "24h",
    dry_run: Annotated[bool, typer.Option(help="List what would be deleted; delete nothing.")] = False,
    force: Annotated[bool, typer.Option(help="Allow --older-than below the safe minimum (10m).")] = False,
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Delete stale gate branches left by crashed runs (never main, never a branch the gate did not name,
    never the branch of a run that is still alive)."""
    with cli_errors():
        from .gc import check_min_age, collect_stale_branches, parse_duration

        threshold = parse_duration(older_than)
        check_min_age(threshold, force=force, given=older_than)
        stale = collect_stale_branches(
            _client(backend, lakehouse),
            older_than=threshold,
            dry_run=dry_run,
            echo=lambda line: out.print(line, markup=False, highlight=False, soft_wrap=True),
        )
        table = Table("branch", "age", "action")
        for branch in stale:
            if branch.alive:
                action = f"kept: {branch.alive}"
            else:
                action = "would delete" if dry_run else ("deleted" if branch.deleted else "already gone")
            table.add_row(branch.name, str(branch.age).split(".")[0], action)
        if stale:
            print_table(table)
        else:
            out.print(f"no gate branch older than {older_than}")


def _mount_subcommands() -> None:
    # `wap suite ...` lives in its own module (suite authoring); mounted here so `wap --help` lists it.
    from .suite_cli import suite_app

    app.add_typer(suite_app, name="suite", help="Author expectation suites: list, show, check, init, diff.")
    from .doctor_cli import doctor_app

    app.add_typer(
        doctor_app,
        name="doctor",
        help="Check the lakehouse's catalog and files; --rebuild recovers refs from the journal.",
    )


_mount_subcommands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
