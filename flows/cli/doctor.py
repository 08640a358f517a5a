"""`wap doctor`: check a lakehouse (catalog, journal, metadata, data files) and repair what can be repaired.

Parsing and printing only; the checks and the rebuild are in `flows/lakehouse/doctor.py`.

    wap doctor [--lakehouse DIR]            check only; writes nothing
    wap doctor --rebuild [--lakehouse DIR]  rebuild catalog.db from journal/ (the old one is kept aside)

`wap doctor` prints one line per finding (`error: ...`, `warning: ...`, `info: ...`) on stdout, then a
summary: `healthy: ...` on stdout with exit 0, or `not healthy: ...` as the last line on stderr with
exit 3. It checks that the catalog opens and passes SQLite's integrity check, that every branch points
at a commit in the catalog and every file its head needs exists (Iceberg metadata, manifest list,
manifests, Parquet data files), that the journal agrees with the catalog, and counts orphan files (in
warehouse/ but referenced by no commit: left by failed or killed writes; `wap gc` reclaims them).

`wap doctor --rebuild` writes a new catalog from the journal (plus whatever the old catalog still yields),
with each branch at the newest of its commits whose files all exist: it prints one line per branch
(kept, rolled back from X to Y and why, dropped and why; main is never dropped but reset to an empty
commit), and where it kept the old catalog (`catalog.db.damaged-<timestamp>`). Exit 0 when rebuilt,
3 when another process is writing (it holds writers.lock), when there is nothing to rebuild from, or
when the directory cannot be written.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import EXIT_NOT_PUBLISHED, EXIT_OK, LakehousePath, cli_errors, err, fail, one_line, out

doctor_app = typer.Typer(no_args_is_help=False)


@doctor_app.callback(invoke_without_command=True)
def doctor(
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Rebuild catalog.db from journal/, each branch at its newest commit whose files all exist "
            "(the old catalog is kept as catalog.db.damaged-<timestamp>).",
        ),
    ] = False,
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Check the lakehouse (exit 0 healthy, 3 problems); with --rebuild, recover the refs from the journal."""
    with cli_errors():
        from flows.lakehouse import LakehouseError
        from flows.lakehouse.doctor import check_lakehouse, format_size, rebuild_catalog

        if rebuild:
            try:
                report = rebuild_catalog(lakehouse)
            except LakehouseError as exc:  # busy, nothing to rebuild from, storage: all exit 3
                fail(f"not rebuilt: {one_line(exc)}", EXIT_NOT_PUBLISHED)
            for o in report.branches:
                new = (o.new or "?")[:12]  # None only for a dropped branch
                if o.status == "kept":
                    line = f"{o.branch}: at {new}"
                elif o.status == "rolled back":
                    line = f"{o.branch}: rolled back from {(o.old or '?')[:12]} to {new}: {o.reason}"
                elif o.status == "reset":
                    old = o.old[:12] if o.old else "?"
                    line = f"{o.branch}: reset from {old} to a new empty commit {new}: {o.reason}"
                else:
                    line = f"{o.branch}: dropped (was at {(o.old or '?')[:12]}): {o.reason}"
                out.print(line, markup=False, highlight=False, soft_wrap=True)
            for o in report.tags:
                if o.status == "kept":
                    line = f"tag {o.branch}: at {(o.new or '?')[:12]}"
                else:
                    line = f"tag {o.branch}: dropped (was at {(o.old or '?')[:12]}): {o.reason}"
                out.print(line, markup=False, highlight=False, soft_wrap=True)
            aside = f"; the old catalog is kept as {report.damaged_copy}" if report.damaged_copy else ""
            out.print(
                f"rebuilt {report.root / 'catalog.db'} from the {' and '.join(report.sources)}: "
                f"{report.commits} commits, {sum(o.new is not None for o in report.branches)} branches, "
                f"{sum(o.new is not None for o in report.tags)} tags{aside}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_OK)
        health = check_lakehouse(lakehouse)
        for finding in health.findings:
            out.print(f"{finding.severity}: {finding.message}", markup=False, highlight=False, soft_wrap=True)
        orphans = f"{health.orphan_files} orphan files ({format_size(health.orphan_bytes)})"
        if health.healthy:
            out.print(
                f"healthy: {health.root}: {health.branches} branches, {health.commits} commits, {orphans}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return
        err.print(
            f"not healthy: {health.root}: {len(health.errors)} problem(s); `wap doctor --rebuild` rebuilds the "
            "catalog from the journal with each branch at its newest complete commit (the old catalog is kept)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_NOT_PUBLISHED)
