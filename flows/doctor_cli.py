"""`wap doctor`: check a lakehouse (catalog, journal, metadata, data files) and repair what can be repaired.

Parsing and printing only; the checks and the rebuild are in `flows/lakehouse/doctor.py`.
"""

from __future__ import annotations

import typer

# Defined before importing flows.cli (see suite_cli.py: `python -m flows.cli` loads cli.py twice).
doctor_app = typer.Typer(no_args_is_help=False)
