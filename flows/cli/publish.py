"""`wap publish BRANCH`: publish a branch a gate run kept for inspection (on_success inspect)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import Backend, LakehousePath, app, cli_errors, out, quiet_prefect_tracebacks, track_stderr


@app.command()
def publish(
    branch: Annotated[str, typer.Argument(help="The branch `wap run --on-success inspect` kept.")],
    backend: Backend = "local",
    lakehouse: LakehousePath = ".lakehouse",
) -> None:
    """Merge into main exactly the commit the gate audited on BRANCH, with the evidence it recorded (plus
    wap.inspected, wap.published_by), then delete the branch. Exit 0 published, 2 no pending publish for BRANCH
    (never kept, or published already), 3 not published (the branch moved, was deleted or recreated since the
    audit, main changed its tables, or the lakehouse or Prefect is unavailable)."""
    track_stderr()
    with cli_errors(gate=True):
        from flows.gate.runtime import check_prefect_api
        from flows.lakehouse import BACKENDS, InvalidNameError
        from flows.lakehouse.names import validate_branch

        if backend not in BACKENDS:
            raise InvalidNameError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
        validate_branch(branch)
        check_prefect_api()  # the pending publish is kept in Prefect
        quiet_prefect_tracebacks()
        from flows.gate import run_publish

        outcome = run_publish(branch, backend=backend, lakehouse=lakehouse)
        out.print(
            f"published {outcome.kind} {outcome.name} from branch {branch} (inspected; audited commit"
            f" {outcome.audited_commit[:12]}) at commit {outcome.published_commit}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
