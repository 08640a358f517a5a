"""Fixtures for tests of the gate: a real Prefect test server, an isolated GX context and lakehouse.

Registered as a plugin by conftest; the Prefect server starts only for tests that ask for it, so
lakehouse-only tests never pay for it. `run_cli` (in-process) and `run_cli_process` come from cli_runner.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import run_cli, run_cli_process

__all__ = ["REAL_TITANIC", "REPO", "latest_artifact", "run_cli", "run_cli_process"]

REPO = Path(__file__).resolve().parents[1]
REAL_TITANIC = REPO.parent / "shared" / "data" / "titanic.csv"


@pytest.fixture(scope="session")
def isolated_gx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the repo's gx/ (suites, checkpoints, datasets.yml): tests never write into the repo."""
    target = tmp_path_factory.mktemp("gx") / "gx"
    shutil.copytree(REPO / "gx", target, ignore=shutil.ignore_patterns("uncommitted"))
    old = os.environ.get("WAP_GX_DIR")
    os.environ["WAP_GX_DIR"] = str(target)
    yield target
    if old is None:
        os.environ.pop("WAP_GX_DIR", None)
    else:
        os.environ["WAP_GX_DIR"] = old


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory, isolated_gx: Path) -> Iterator[str]:
    """A real Prefect server (Prefect's own test harness) with its own database; yields its API URL."""
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture
def lakehouse_dir(tmp_path: Path) -> Path:
    return tmp_path / "lakehouse"


def latest_artifact(key: str, api: str | None = None) -> dict | None:
    """The newest artifact with this key, read back from the Prefect server's REST API (default: the current one)."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    response = httpx.post(
        f"{api or PREFECT_API_URL.value()}/artifacts/filter",
        json={"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1, "offset": 0},
        timeout=30,
    )
    response.raise_for_status()
    found = response.json()
    return found[0] if found else None
