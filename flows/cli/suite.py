"""`wap suite ...`: expectation-suite authoring commands. Parsing and printing only; the logic is in `flows/suite/`.

Exit codes follow `wap`: 0 ok, 1 problems found (`check`), 2 bad usage or input.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from flows.cli.common import EXIT_BAD_INPUT, EXIT_BLOCKED, Backend, LakehousePath, cli_errors, fail, out
from flows.shorten import shorten

if TYPE_CHECKING:
    from flows.suite import SuiteDiff, SuiteView

suite_app = typer.Typer(no_args_is_help=True)

_STORE_DIRS = ("checkpoints", "validation_definitions", "expectations")
INIT_TABLE_ROWS = 50  # `suite init` summarises at most this many columns
DatasetArg = Annotated[str, typer.Argument(help="Dataset declared in gx/datasets.yml (or a suite name).")]


def _table(*columns: str, **options: Any) -> Table:
    # Long expectation names and paths fold onto the next line instead of being cut with an ellipsis.
    table = Table(**options)
    for name in columns:
        table.add_column(name, overflow="fold")
    return table


def _cell(value: Any, limit: int = 300) -> Text:
    # Text, not str: Rich would read "[...]" in a value set or note as markup and swallow it.
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return Text(shorten(text, limit))


def _arguments(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in arguments.items())


@suite_app.command("list")
def list_command() -> None:
    """Every suite with its dataset, number of expectations and the checkpoints that use it."""
    with cli_errors():
        from flows.suite import display_path, list_suites

        suites = list_suites()
        if not suites:
            out.print("no suites yet: create one with `wap suite init DATASET --source URI`")
            return
        table = _table("suite", "dataset", "expectations", "checkpoints", "file")
        for s in suites:
            count = "unreadable" if s.expectations is None else str(s.expectations)
            table.add_row(
                _cell(s.name),
                _cell(", ".join(s.datasets) or "-"),
                count,
                _cell(", ".join(s.checkpoints) or "-"),
                _cell(display_path(s.path)),
            )
        out.print(table)


@suite_app.command()
def show(dataset: DatasetArg) -> None:
    """The suites of a dataset (its batch suite, then its table suite) as tables: expectation, column, arguments,
    mostly, severity (critical blocks a publish; warning, info only report), notes. A suite's own name shows that
    suite alone."""
    with cli_errors():
        from flows.suite import show_suites

        for view in show_suites(dataset):
            _print_suite(view)


def _print_suite(view: SuiteView) -> None:
    from flows.suite import display_path

    used = ", ".join(view.checkpoints) or "no checkpoint"
    table = _table(
        "#",
        "expectation",
        "column",
        "arguments",
        "mostly",
        "severity",
        "notes / meta",
        title=Text(f"suite {view.name} ({display_path(view.path)}), dataset {view.dataset or '-'}, {used}"),
        show_lines=True,
    )
    for e in view.expectations:
        notes = e.notes or ""
        if e.meta:
            notes += ("\n" if notes else "") + _arguments(e.meta)
        mostly = "" if e.mostly is None else f"{e.mostly:g}"
        table.add_row(
            str(e.index), _cell(e.type), _cell(e.column or "(table)"), _cell(_arguments(e.arguments)), mostly,
            e.severity, _cell(notes),
        )  # fmt: skip
    out.print(table)
    if view.notes:
        out.print(Text(f"notes: {view.notes}"), soft_wrap=True)
    out.print(f"{len(view.expectations)} expectations")


@suite_app.command()
def check(
    dataset: Annotated[
        str | None, typer.Argument(help="Only this dataset's suite and checkpoint (default all).")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Check columns against this CSV/Parquet (when the table does not exist yet).")
    ] = None,
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Find what would break a run (types, arguments, columns, references) without running a validation."""
    if source and not dataset:
        fail("error: --source needs a DATASET (its suite's columns are checked against the source)", EXIT_BAD_INPUT)
    with cli_errors():
        from flows.datasets import gx_dir as project_root
        from flows.suite import check_suites, display_path

        report = check_suites(dataset, source=source, backend=backend, lakehouse=lakehouse)
        kinds = [p.parent.name if p.suffix == ".json" else p.name for p in report.files]
        counts = ", ".join(f"{kinds.count(k)} in {k}/" if k in _STORE_DIRS else k for k in dict.fromkeys(kinds))
        out.print(Text(f"checked {display_path(project_root())}: {counts}"), soft_wrap=True)
        for note in report.notes:
            out.print(Text(note), soft_wrap=True)
        for problem in report.problems:
            out.print(Text(f"{problem.severity.upper()}: {problem}"), soft_wrap=True)
        if report.errors:
            files = len({p.path for p in report.errors})
            fail(f"check failed: {len(report.errors)} problem(s) in {files} file(s)", EXIT_BLOCKED)
        out.print(f"ok: no problems found ({len(report.warnings)} warning(s))")


@suite_app.command()
def init(
    dataset: Annotated[str, typer.Argument(help="Name of the new dataset (also its suite, checkpoint and table).")],
    source: Annotated[str, typer.Option(help="CSV or Parquet to profile: path, glob, file://, https:// or s3://.")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing suite and checkpoint.")] = False,
) -> None:
    """Profile a source and write a starter suite, checkpoint and dataset declaration to edit."""
    with cli_errors():
        from flows.datasets import datasets_file
        from flows.suite import display_path, init_suite, show_suite

        result = init_suite(dataset, source, force=force)
        # Nothing written: a rerun on the same source found exactly what it generates.
        verb = ("overwrote" if result.overwritten else "wrote") if result.written else "kept"
        note = "" if result.written else " (already up to date, nothing written)"
        out.print(
            Text(
                f"{verb} {display_path(result.suite_path)}: {result.expectations} expectations "
                f"from {result.profile.rows:,} rows of {source}{note}"
            ),
            soft_wrap=True,
        )
        table = _table("column", "expectations")
        by_column: dict[str, list[str]] = {}
        for e in show_suite(dataset).expectations:
            detail = e.type.removeprefix("expect_") + (f" (mostly {e.mostly:g})" if e.mostly is not None else "")
            by_column.setdefault(e.column or "(table)", []).append(detail)
        # A wide source would print thousands of rows nobody reads (and take seconds): `suite show` has them all.
        for column, kinds in list(by_column.items())[:INIT_TABLE_ROWS]:
            table.add_row(_cell(column), _cell(", ".join(kinds)))
        out.print(table)
        table_suite = result.suite_path.with_name(f"{result.suite_path.stem}_table.json")
        if table_suite in result.written:
            out.print(
                Text(
                    f"wrote {display_path(table_suite)}: a starter table suite (rules on the table as it would be"
                    " published: unique ids across it, no fewer rows than main)"
                ),
                soft_wrap=True,
            )
        if len(by_column) > INIT_TABLE_ROWS:
            out.print(f"... and {len(by_column) - INIT_TABLE_ROWS} more columns: `wap suite show {dataset}` lists them")
        where = display_path(datasets_file())
        message = {
            "added": f"declared dataset {dataset} in {where} (table bauplan.{dataset}, source {source})",
            "updated": f"pointed dataset {dataset} in {where} at checkpoint {dataset}",
            "unchanged": f"dataset {dataset} was already declared in {where}",
        }[result.declaration]
        if result.declaration == "added" and result.dataset.key:
            message += f", key {', '.join(result.dataset.key)} (names failing rows in reports)"
        out.print(Text(message), soft_wrap=True)
        if result.proposed_key:  # declared before, without a key: the user's declaration is not rewritten
            out.print(
                Text(f"proposed key: add `key: {result.proposed_key[0]}` to dataset {dataset} in {where}"),
                soft_wrap=True,
            )
        out.print(
            Text(
                f"next: edit {display_path(result.suite_path)}, then `wap suite check {dataset} --source {source}` "
                f"and `wap validate {dataset} --source {source}`; `wap run {dataset}` publishes"
            ),
            soft_wrap=True,
        )


@suite_app.command()
def diff(dataset: DatasetArg) -> None:
    """What changed in the dataset's suites (batch, then table) since the last git commit: expectations added,
    removed, changed."""
    with cli_errors():
        from flows.suite import diff_suites

        for result in diff_suites(dataset):
            _print_diff(result)


def _print_diff(result: SuiteDiff) -> None:
    out.print(Text(f"suite {result.suite}: {result.message}"), soft_wrap=True)
    if result.status == "no_git":
        return
    if result.status == "unchanged":
        out.print("no changes")
        return
    table = _table("change", "expectation", "column", "details")
    for change in result.changes:
        table.add_row(
            change.kind, _cell(change.type), _cell(change.column or "(table)"), _cell("\n".join(change.details))
        )
    for detail in result.suite_changes:
        table.add_row("changed", "(suite)", "", _cell(detail))
    out.print(table)
    counts = {k: sum(c.kind == k for c in result.changes) for k in ("added", "removed", "changed")}
    out.print(", ".join(f"{n} {k}" for k, n in counts.items()))
