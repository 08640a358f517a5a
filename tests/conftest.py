"""Shared pytest fixtures. Keep them generic: several test modules rely on them.

The gate fixtures live in `gate_fixtures.py` (Prefect is only started by tests that ask for it) and are
registered here so every test module can request them by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gate_fixtures import isolated_gx, lakehouse_dir, prefect_api  # noqa: F401  (registers the fixtures)

from flows.lakehouse import connect
from flows.lakehouse.local import LocalClient


@pytest.fixture
def lakehouse(lakehouse_dir: Path) -> LocalClient:  # noqa: F811  (lakehouse_dir is the fixture above)
    """A fresh embedded lakehouse (real files, real SQLite) in the test's temporary directory."""
    return connect("local", lakehouse_dir, author="tester")
