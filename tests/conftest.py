"""Shared test setup and generic fixtures.

Every test session gets its own PREFECT_HOME (never the user's ~/.prefect). The gate fixtures live in
`gate_fixtures.py` (Prefect starts only for tests that ask for it) and are registered as a plugin here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="wap-test-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)  # tests start their own servers
# What a `wap` subprocess gets from run_cli_process, for the in-process run_cli too: Rich reads it when
# flows.cli creates its consoles, and wide tables never wrap a cell mid-value.
os.environ["COLUMNS"] = "250"

pytest_plugins = ["gate_fixtures"]

# What keeps a test out of the fast tier (`-m "not slow"`): each of these marks implies `slow`.
SLOW_KINDS = ("live", "browser", "server", "subprocess", "crash", "soak")
LONG_KINDS = ("browser", "crash", "soak")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects, so the added marks count
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`server` on every test that needs the Prefect test server (however indirectly), `slow` on every
    test of a slow kind: a new server test cannot land in the fast tier by forgetting a mark."""
    for item in items:
        if "prefect_api" in getattr(item, "fixturenames", ()) and item.get_closest_marker("server") is None:
            item.add_marker(pytest.mark.server)
        if item.get_closest_marker("slow") is None and any(item.get_closest_marker(k) for k in SLOW_KINDS):
            item.add_marker(pytest.mark.slow)
    # Modules holding the longest tests (browser, crash, soak) first, each module still in one piece (its
    # module fixtures built once): under xdist a long test started last would keep one worker busy alone.
    long_modules = {item.path for item in items if any(item.get_closest_marker(k) for k in LONG_KINDS)}
    items.sort(key=lambda item: item.path not in long_modules)  # stable: the order within is kept


@pytest.fixture
def lakehouse(lakehouse_dir: Path):
    """A fresh embedded lakehouse (real files, real SQLite) in the test's temporary directory."""
    from flows.lakehouse import connect

    return connect("local", lakehouse_dir, author="tester")


@pytest.fixture
def shipped_gx(tmp_path: Path) -> Path:
    """A copy of the repository's gx/ (without its uncommitted/ results) that a test may edit."""
    target = tmp_path / "gx"
    shutil.copytree(Path(__file__).resolve().parents[1] / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    return target
