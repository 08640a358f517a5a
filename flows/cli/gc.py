"""`wap gc`: delete the branches crashed or killed runs left behind."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import Backend, LakehousePath, app, cli_errors, lakehouse_client, out, print_table


@app.command()
def gc(
    older_than: Annotated[str, typer.Option(help="Only branches at least this old: 90s, 30m, 24h, 7d.")] = "24h",
    dry_run: Annotated[bool, typer.Option(help="List what would be deleted; delete nothing.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            help="Accept weaker evidence: --older-than below the safe minimum (10m); gate branches named before"
            " names carried their creation time, aged by their head commit (Bauplan); job branches younger than 24h."
        ),
    ] = False,
    job_branches: Annotated[
        bool,
        typer.Option(
            "--job-branches",
            help="Also delete your transactional branches that failed Bauplan jobs leave behind"
            " (<user>.<branch>-bpln-tx-<command>-<time>-<job id>), once older than --older-than and 24h.",
        ),
    ] = False,
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Delete stale gate branches left by crashed runs (never main, never a branch the gate did not name,
    never the branch of a run that is still alive; on Bauplan only your own, judged by age alone)."""
    with cli_errors():
        from flows.gate.gc import check_min_age, collect_stale_branches, describe_age_from, parse_duration

        threshold = parse_duration(older_than)
        check_min_age(threshold, force=force, given=older_than)
        stale = collect_stale_branches(
            lakehouse_client(backend, lakehouse),
            older_than=threshold,
            dry_run=dry_run,
            echo=lambda line: out.print(line, markup=False, highlight=False, soft_wrap=True),
            force=force,
            job_branches=job_branches,
        )
        table = Table("branch", "age", "age from", "action")
        for branch in stale:
            reason = branch.alive or branch.kept
            if reason:
                action = f"kept: {reason}"
            else:
                action = "would delete" if dry_run else ("deleted" if branch.deleted else "already gone")
            table.add_row(branch.name, str(branch.age).split(".")[0], describe_age_from(branch.age_from), action)
        if stale:
            print_table(table)
        else:
            out.print(f"no {'gate or job' if job_branches else 'gate'} branch older than {older_than}")
