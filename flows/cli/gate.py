"""`wap run`, `wap validate`, `wap demo`, `wap serve`: the gate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_BLOCKED,
    EXIT_NOT_PUBLISHED,
    EXIT_OK,
    Backend,
    LakehousePath,
    app,
    cli_errors,
    err,
    exit_code_for,
    fail,
    one_line,
    out,
    print_table,
    quiet_prefect_tracebacks,
    track_stderr,
)


def _run_one(
    dataset: str,
    source: str | None,
    branch: str | None,
    backend: str,
    lakehouse: str,
    options: WapOptions,
    mode: str | None,
):
    from flows.gate import run_gate

    return run_gate(dataset, source, branch, backend, lakehouse, mode=mode, **options.flow_parameters())


@dataclass(frozen=True)
class WapOptions:
    """A run's `--on-success`, `--on-failure` and `--keep-failed-branch` (None: as the dataset or group declares)."""

    on_success: str | None
    on_failure: str | None
    keep_failed_branch: bool

    def check(self) -> None:
        """Bad values are exit 2 before anything runs (the flows check them again, for deployments). Only the
        flags are checked here, so any declaration will do."""
        from flows.datasets import Dataset, resolve_wap_options

        resolve_wap_options(Dataset("", "", ""), self.on_success, self.on_failure, self.keep_failed_branch)

    def flow_parameters(self) -> dict:
        return asdict(self)


def published_line(outcome) -> str:
    """What `wap run` prints for a published run (append: the batch and the table it made; a group: each member),
    or for one kept for inspection (on_success inspect: passed, not published)."""
    grouped = hasattr(outcome, "members")  # a GroupOutcome (not imported here: `wap --help` stays light)
    if outcome.kept_for_inspection:
        what = f"group {outcome.group}" if grouped else outcome.dataset
        return (
            f"audited {what}: passed; kept branch {outcome.branch} at commit {outcome.audited_commit} for"
            f" inspection, not published: publish it with `wap publish {outcome.branch}`" + _warned(outcome)
        )
    if grouped:
        parts = [_member_rows(m) for m in outcome.members.values()]
        said = f"published group {outcome.group}: {'; '.join(parts)} at commit {outcome.published_commit}"
    else:
        said = f"published {outcome.dataset}: {_member_rows(outcome, named=False)} at commit {outcome.published_commit}"
    return said + _warned(outcome)


def _warned(outcome) -> str:
    """ ", with warnings: ..." naming each failed rule of severity warning with its notes ("" if none)."""
    from flows.reports.text import summarize_warnings

    audits = outcome.audits if hasattr(outcome, "members") else {outcome.dataset: outcome.audit}
    said = [
        f"{name}: {summarize_warnings(audit)}" if len(audits) > 1 else summarize_warnings(audit)
        for name, audit in audits.items()
        if audit is not None and audit.warnings
    ]
    return f", with warnings: {'; '.join(said)}" if said else ""


def _member_rows(outcome, *, named: bool = True) -> str:
    name = f"{outcome.dataset} " if named else ""
    if outcome.mode == "append":
        return f"{name}appended {outcome.added} rows ({outcome.rows} in the table)"
    return f"{name}{outcome.rows} rows"


def parse_group_sources(group, given: list[str]) -> dict[str, str]:
    """`--source MEMBER=URI` for a group, one per member to override."""
    from flows.datasets import DatasetError

    sources: dict[str, str] = {}
    for item in given:
        member, sep, uri = item.partition("=")
        if not sep or not uri or member not in group.members:
            raise DatasetError(
                f"--source {item!r:.80}: for a group give MEMBER=URI, MEMBER one of {', '.join(group.members)}"
            )
        if member in sources:
            raise DatasetError(f"--source {member}=...: given twice")
        sources[member] = uri
    return sources


@app.command()
def run(
    dataset: Annotated[str | None, typer.Argument(help="Dataset declared in gx/datasets.yml.")] = None,
    all_datasets: Annotated[
        bool, typer.Option("--all", help="Every declared dataset and group, concurrently (a group as one unit).")
    ] = False,
    group: Annotated[
        str | None, typer.Option(help="A group declared in gx/datasets.yml: all its members published in one commit.")
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(help="Override the declared source URI (a group: MEMBER=URI, repeatable)."),
    ] = None,
    branch: Annotated[str | None, typer.Option(help="Branch name (default <user>.wap_<dataset>_<id>).")] = None,
    keep_failed_branch: Annotated[
        bool, typer.Option(help="Keep the branch of a failed run: an alias of --on-failure inspect.")
    ] = False,
    on_success: Annotated[
        str | None,
        typer.Option(
            help="merge (publish to main) or inspect (keep the audited branch, publish later with `wap publish"
            " BRANCH`); default: as declared, else merge."
        ),
    ] = None,
    on_failure: Annotated[
        str | None,
        typer.Option(help="delete (the failed branch) or inspect (keep it); default: as declared, else delete."),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(help="replace (the table becomes the source) or append (add the rows); default: as declared."),
    ] = None,
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Write, audit and publish a dataset or a group: exit 0 published (or, on_success inspect, passed and kept for
    `wap publish`), 1 blocked, 2 bad input, 3 not published."""
    if [dataset is not None, all_datasets, group is not None].count(True) != 1:
        fail("error: give one of DATASET, --group NAME or --all", EXIT_BAD_INPUT)
    if all_datasets and (source or branch):
        fail("error: --source and --branch apply to one dataset or group, not --all", EXIT_BAD_INPUT)
    if group is not None and mode is not None:
        fail("error: --mode applies to one dataset; a group's members run in their declared modes", EXIT_BAD_INPUT)
    if dataset is not None and source and len(source) > 1:
        fail("error: --source is given once for a dataset (MEMBER=URI pairs are for --group)", EXIT_BAD_INPUT)
    track_stderr()
    options = WapOptions(on_success, on_failure, keep_failed_branch)
    with cli_errors(gate=True):
        _check_backend(backend)
        _preflight(dataset, branch, mode, group)
        options.check()
        sources = {}
        if group is not None:
            from flows.datasets import get_group

            sources = parse_group_sources(get_group(group), source or [])
        _check_sources(backend, dataset, group, source, sources)
        from flows.gate import check_prefect_api

        check_prefect_api()  # before any branch exists: an unreachable API costs seconds and writes nothing
        quiet_prefect_tracebacks()
        if group is not None:
            from flows.gate import run_group

            grouped = run_group(group, sources, branch, backend, lakehouse, **options.flow_parameters())
            out.print(published_line(grouped), markup=False, highlight=False, soft_wrap=True)
            return
        if dataset is not None:
            one_source = source[0] if source else None
            outcome = _run_one(dataset, one_source, branch, backend, lakehouse, options, mode)
            out.print(published_line(outcome), markup=False, highlight=False, soft_wrap=True)
            return
        _run_all(backend, lakehouse, options, mode)


def _check_sources(
    backend: str, dataset: str | None, group: str | None, given: list[str] | None, sources: dict[str, str]
) -> None:
    """Bauplan imports from S3 only: a source it cannot read is exit 2 before any branch exists (the flows check
    again, for deployments; `--all` leaves it to each run, so that the others go on)."""
    from flows.datasets import check_source_for_backend, get_dataset, get_group

    if group is not None:
        for member in get_group(group).members:
            check_source_for_backend(member, sources.get(member) or get_dataset(member).source, backend, group=group)
    elif dataset is not None:
        check_source_for_backend(dataset, given[0] if given else get_dataset(dataset).source, backend)


def _run_all(backend: str, lakehouse: str, options: WapOptions, mode: str | None) -> None:
    """Every dataset that is in no group, and every group as one unit, concurrently; a summary table."""
    from flows.datasets import load_datasets, load_groups
    from flows.gate import GroupOutcome, run_group

    groups = load_groups()
    grouped = {m for g in groups.values() for m in g.members}
    units = {n: (n, False) for n in sorted(load_datasets()) if n not in grouped}
    units.update({f"{g} (group)": (g, True) for g in sorted(groups)})
    with ThreadPoolExecutor(max_workers=min(8, len(units)) or 1) as pool:
        futures = {
            label: pool.submit(run_group, name, None, None, backend, lakehouse, **options.flow_parameters())
            if is_group
            else pool.submit(_run_one, name, None, None, backend, lakehouse, options, mode)
            for label, (name, is_group) in units.items()
        }
    summary = Table("dataset", "outcome", "rows", "commit / reason")
    worst = EXIT_OK
    for name, future in futures.items():
        exc = future.exception()
        if exc is None:
            o = future.result()
            rows = sum(m.rows or 0 for m in o.members.values()) if isinstance(o, GroupOutcome) else o.rows
            if o.kept_for_inspection:
                summary.add_row(name, "kept for inspection", str(rows), f"wap publish {o.branch}")
            else:
                said = "published with warnings" if o.warned else "published"
                summary.add_row(name, said, str(rows), (o.published_commit or "")[:12])
        else:
            code = exit_code_for(exc)
            worst = max(worst, code)
            label = {EXIT_BLOCKED: "blocked", EXIT_NOT_PUBLISHED: "not published"}.get(code, "error")
            summary.add_row(name, label, "", one_line(exc)[:200])
    print_table(summary)
    if worst:
        raise typer.Exit(worst)


def _preflight(dataset: str | None, branch: str | None, mode: str | None = None, group: str | None = None) -> None:
    """Reject an unknown dataset, group or mode or a bad branch name before Prefect or the lakehouse is touched."""
    from flows.datasets import get_dataset, get_group, load_datasets, load_groups, validate_mode
    from flows.gate import validate_gate_branch

    if mode is not None:
        validate_mode(mode, "--mode: ")
    if group is not None:
        get_group(group)
    elif dataset is None:
        load_datasets()
        load_groups()
    else:
        get_dataset(dataset)
    if branch is not None:
        validate_gate_branch(branch)


def _check_backend(backend: str) -> None:
    from flows.lakehouse import BACKENDS, InvalidNameError

    if backend not in BACKENDS:
        raise InvalidNameError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")


@app.command()
def validate(
    dataset: Annotated[str, typer.Argument(help="Dataset whose checkpoint to run.")],
    source: Annotated[str, typer.Option(help="CSV or Parquet file to audit (nothing is written).")],
    mode: Annotated[
        str | None, typer.Option(help="replace or append: overrides the dataset's mode (append: main + file).")
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Stay up with GX loaded and validate again on each save of the dataset's suites, checkpoint,"
            " validation definitions, gx/datasets.yml or the source; Ctrl-C stops (exit 0).",
        ),
    ] = False,
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Run the dataset's audit on a file against what main publishes, writing nothing: the batch suite on the
    file, the table suite on the file (replace) or main's rows plus the file (append), with main's facts as
    suite parameters. Exit 0 pass, 1 fail, 2 bad input (--watch: 0 when stopped with Ctrl-C)."""
    if watch:
        from flows.cli.watch import watch_validate

        with cli_errors():  # bad arguments are exit 2 before watching; once watching, errors are lines
            _check_backend(backend)
            if mode is not None:
                from flows.datasets import validate_mode

                validate_mode(mode, "--mode: ")
            watch_validate(dataset, source, lambda: validate_file(dataset, source, mode, backend, lakehouse))
        return
    with cli_errors():
        from flows.reports.markdown import expectation_rows
        from flows.reports.text import describe_failures, summarize_failures

        result = validate_file(dataset, source, mode, backend, lakehouse)
        table = Table("status", "expectation", "column", "observed", "unexpected", "sample")
        for row in expectation_rows(result):
            table.add_row(
                row["status"],
                row["rule"],
                row["column"],
                row["observed"],
                str(row["unexpected"]),
                row["sample"],
            )
        print_table(table)
        if result.data_docs_url:
            from flows.reports.docs_site import docs_text

            out.print(f"data docs: {docs_text(result.data_docs_url)}", soft_wrap=True)
        from flows.audit.files import row_metrics_line

        out.print(row_metrics_line(result), markup=False, highlight=False, soft_wrap=True)
        if not result.success:
            fail(f"blocked: {dataset}: {summarize_failures(result)}", EXIT_BLOCKED)
        stats = result.statistics
        if result.failed:  # only rules of severity warning or info failed: a publish would go ahead
            err.print(describe_failures(result), markup=False, highlight=False, soft_wrap=True)
            said = "passed with warnings" if result.warnings else "passed"
            out.print(f"{said}: {stats['successful']}/{stats['evaluated']} expectations", soft_wrap=True)
            return
        out.print(f"passed: {stats['successful']}/{stats['evaluated']} expectations")


def validate_file(dataset: str, source: str, mode: str | None, backend: str, lakehouse: str):
    """`wap validate`'s audit of ``source``: the declaration, the lakehouse's main and the suites as they are now
    (each read again, so a `--watch` sees every save)."""
    import dataclasses

    from flows.audit.files import validate_source
    from flows.datasets import get_dataset, validate_mode
    from flows.lakehouse import connect

    _check_backend(backend)
    spec = get_dataset(dataset)
    if mode is not None:
        spec = dataclasses.replace(spec, mode=validate_mode(mode, "--mode: "))
    # An embedded lakehouse that does not exist has nothing published: not created here.
    client = connect(backend, lakehouse) if backend != "local" or Path(lakehouse).is_dir() else None
    return validate_source(spec, source, client, run_name=f"{dataset}-validate")


@app.command()
def demo(
    lakehouse: LakehousePath = ".lakehouse",
    rows: Annotated[int, typer.Option(help="Rows of generated titanic-shaped data.")] = 891,
) -> None:
    """Offline demo: the gate publishes clean generated data, then blocks a corrupted copy."""
    track_stderr()
    with cli_errors(gate=True):
        from flows.gate import check_prefect_api

        check_prefect_api()
        quiet_prefect_tracebacks()
        from flows.demo import run_demo

        run_demo(Path(lakehouse), rows=rows, console=out)


@app.command()
def serve(
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Serve one Prefect deployment per declared dataset (with its schedule), runnable from the Prefect UI."""
    with cli_errors():
        _check_backend(backend)
        from flows.gate import check_prefect_api

        check_prefect_api()
        from prefect import serve as prefect_serve

        from flows.gate.deployments import build_deployments

        deployments = build_deployments(backend=backend, lakehouse=lakehouse)
        out.print(
            f"serving {len(deployments)} deployment(s): " + ", ".join(f"{d.flow_name}/{d.name}" for d in deployments)
        )
        prefect_serve(*deployments)
