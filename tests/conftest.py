"""Shared test setup and generic fixtures.

Every test session gets its own PREFECT_HOME (never the user's ~/.prefect). The gate fixtures live in
`gate_fixtures.py` (Prefect starts only for tests that ask for it) and are registered as a plugin here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="wap-test-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)  # tests start their own servers

pytest_plugins = ["gate_fixtures"]


@pytest.fixture
def lakehouse(lakehouse_dir: Path):
    """A fresh embedded lakehouse (real files, real SQLite) in the test's temporary directory."""
    from flows.lakehouse import connect

    return connect("local", lakehouse_dir, author="tester")
