"""`wap revert`: put a dataset's (or a group's) tables on main back to an earlier published state, as a new commit."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import (
    EXIT_BAD_INPUT,
    Backend,
    LakehousePath,
    app,
    cli_errors,
    fail,
    out,
    quiet_prefect_tracebacks,
    track_stderr,
)


@app.command()
def revert(
    dataset: Annotated[str | None, typer.Argument(help="Dataset declared in gx/datasets.yml.")] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Revert every member of this group, in one commit.")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="A commit on main that published it (hash or unique prefix): its state comes back."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded on the revert commit).")] = "",
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Restore the table(s) on main to their state before the last publish (or at the publish --to names), as one
    new commit on main (history is kept). Exit 0 reverted, 2 bad input (unknown dataset, --to not a publish of
    it, nothing to revert, no --reason), 3 main moved under the revert or the lakehouse refused (nothing changed)."""
    if (dataset is None) == (group is None):
        fail("error: give a DATASET or --group NAME (not both)", EXIT_BAD_INPUT)
    if not reason.strip():
        fail("error: --reason is required: say why (it is recorded on the revert commit)", EXIT_BAD_INPUT)
    track_stderr()
    with cli_errors():
        from flows.gate.revert import run_revert
        from flows.gate.runtime import check_prefect_api
        from flows.lakehouse import BACKENDS, InvalidNameError

        if backend not in BACKENDS:
            raise InvalidNameError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
        name = group if group is not None else dataset
        assert name is not None  # exactly one of them, checked above
        check_prefect_api()  # before anything is written: an unreachable API costs seconds, not a half-made revert
        quiet_prefect_tracebacks()
        outcome = run_revert(name, reason, group=group is not None, to=to, backend=backend, lakehouse=lakehouse)
        plan = outcome.plan
        sizes = ", ".join(
            f"{t}: {_rows(outcome.rows_before.get(t))} -> {_rows(outcome.rows_after.get(t))}" for t in plan.tables
        )
        out.print(
            f"reverted {plan.name} to {plan.target[:12]} at commit {outcome.commit} ({sizes})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _rows(rows: int | None) -> str:
    return "no table" if rows is None else f"{rows} rows"
