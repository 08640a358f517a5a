"""`wap`: the command line over the gate and the lakehouse (a thin layer: the flow and the CLI share code).

One module per command group, all on the app in `common`:
    common.py     the app, exit codes, option types, error mapping, printing
    lakehouse.py  branches, tables, log, query
    gate.py       run, validate, demo, serve
    gc.py         gc
    publish.py    publish (a branch kept for inspection)
    revert.py     revert
    suite.py      `wap suite ...`
    doctor.py     `wap doctor`
    docs.py       `wap docs serve|build` (GX data docs over HTTP)
Heavy libraries (Prefect, GX, pyiceberg) are imported inside the commands, so `wap --help` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer

# Each command module registers its commands on the app; `wap --help` lists them in this order.
import flows.cli.lakehouse  # noqa: F401

# isort: split
import flows.cli.gate  # noqa: F401
import flows.cli.gc  # noqa: F401
import flows.cli.publish  # noqa: F401
import flows.cli.revert  # noqa: F401
from flows.cli.common import app, err, exit_code_for, one_line
from flows.cli.docs import LINKING_COMMANDS, check_docs_url, docs_app
from flows.cli.doctor import doctor_app
from flows.cli.suite import suite_app

app.add_typer(suite_app, name="suite", help="Author expectation suites: list, show, check, init, diff.")
app.add_typer(
    doctor_app,
    name="doctor",
    help="Check the lakehouse's catalog and files; --rebuild recovers refs from the journal.",
)
app.add_typer(
    docs_app, name="docs", help="GX data docs: serve the site over HTTP (what the Prefect links open), build a copy."
)


@app.callback()
def _check_configuration(ctx: typer.Context) -> None:
    # A run links its data docs pages at WAP_DOCS_URL: a bad one is bad input before any work, not a failed audit.
    if ctx.invoked_subcommand in LINKING_COMMANDS and os.environ.get("WAP_DOCS_URL"):
        check_docs_url()


__all__ = ["app", "exit_code_for", "main", "one_line"]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
