"""`wap suite ...`: expectation-suite authoring commands (being written)."""

import typer

suite_app = typer.Typer(no_args_is_help=True)
