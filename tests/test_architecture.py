"""The architecture, enforced as CI runs it: the type checker and the import-layer contracts, and the
lakehouse contract (`LakehouseClient`) that both backends must satisfy, checked statically by mypy and at
run time by signature.

mypy and lint-imports run as real subprocesses with the repository's configuration (pyproject.toml). A cold
mypy cache costs about a minute of CPU (GX, Prefect and pyiceberg are analysed once); later runs take seconds.
"""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bauplan
import pytest

from flows.lakehouse import BACKENDS, EvolvesTableSchema, LakehouseClient, ReadsTableFiles, StoredInDirectory
from flows.lakehouse.bauplan_backend import BauplanClient
from flows.lakehouse.local import LocalClient

REPO = Path(__file__).resolve().parents[1]
CONTRACT_TYPES = "tests/lakehouse_contract_types.py"
BACKEND_CLASSES = [LocalClient, BauplanClient]

# The protocol's methods (its `backend` property aside), read from the class so a new method is checked too.
PROTOCOL_METHODS = sorted(
    name for name, value in vars(LakehouseClient).items() if inspect.isfunction(value) and not name.startswith("_")
)
# Where the protocol deliberately names a parameter differently from `bauplan.Client` (see protocol.py).
SDK_NAMES = {("get_tables", "namespace"): "filter_by_namespace"}


def _tool(name: str) -> str:
    """The console script installed next to this interpreter (the project's venv), else one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `uv sync` installs the dev group")
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)


def _shown(proc: subprocess.CompletedProcess[str]) -> str:
    return f"{' '.join(map(str, proc.args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def _parameters(function: Callable[..., object]) -> list[tuple[str, Any, object]]:
    """Name, kind and default of each parameter (annotations are mypy's job)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


# ------------------------------------------------------------------ the tools, as CI runs them
@pytest.mark.slow
def test_mypy_reports_no_errors_over_flows_and_the_contract_module() -> None:
    # `files = ["flows"]` is the configured scope; the contract module assigns both backends to the protocol.
    proc = _run(_tool("mypy"), "flows", CONTRACT_TYPES)
    assert proc.returncode == 0, _shown(proc)
    assert "Success: no issues found" in proc.stdout, _shown(proc)


@pytest.mark.slow
def test_mypy_rejects_a_backend_that_drifts_from_the_protocol(tmp_path: Path) -> None:
    # Without this, the test above would also pass if the protocol stopped constraining anything.
    drifted = tmp_path / "drifted_backend.py"
    drifted.write_text(
        "from flows.lakehouse import LakehouseClient\n"
        "from flows.lakehouse.local import LocalClient\n\n\n"
        "class Drifted(LocalClient):\n"
        "    def get_commits(self, ref: str, *, max_count: int | None = None) -> list:  # type: ignore[override]\n"
        "        return []\n\n\n"
        "client: LakehouseClient = Drifted('.lakehouse')\n"
    )
    proc = _run(_tool("mypy"), str(drifted))
    assert proc.returncode == 1, _shown(proc)
    assert 'variable has type "LakehouseClient"' in proc.stdout and "get_commits" in proc.stdout, _shown(proc)


@pytest.mark.slow
def test_import_linter_contracts_are_kept() -> None:
    proc = _run(_tool("lint-imports"))
    assert proc.returncode == 0, _shown(proc)
    assert "0 broken" in proc.stdout, _shown(proc)


# ------------------------------------------------------------------ the lakehouse contract at run time
def test_protocol_lists_the_client_interface() -> None:
    assert PROTOCOL_METHODS == [  # sorted
        "create_branch",
        "create_table",
        "create_tag",
        "delete_branch",
        "delete_table",
        "delete_tag",
        "get_branch",
        "get_branches",
        "get_commits",
        "get_table",
        "get_tables",
        "get_tag",
        "get_tags",
        "has_branch",
        "has_table",
        "has_tag",
        "import_data",
        "info",
        "merge_branch",
        "query",
        "revert_table",
        "scan",
    ]


@pytest.mark.parametrize("backend", BACKEND_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", PROTOCOL_METHODS)
def test_backend_method_has_the_protocol_parameters(backend: type, name: str) -> None:
    method = getattr(backend, name, None)
    assert callable(method), f"{backend.__name__} has no method {name}"
    # BauplanClient's methods are wrapped (functools.wraps): the signature is the method's own.
    assert _parameters(method) == _parameters(getattr(LakehouseClient, name)), f"{backend.__name__}.{name}"


@pytest.mark.parametrize("backend", BACKEND_CLASSES, ids=lambda c: c.__name__)
def test_backend_names_itself(backend: type) -> None:
    assert backend.backend in BACKENDS
    assert backend.backend == {LocalClient: "local", BauplanClient: "bauplan"}[backend]


@pytest.mark.parametrize("name", PROTOCOL_METHODS)
def test_protocol_method_follows_the_bauplan_sdk(name: str) -> None:
    sdk_method = getattr(bauplan.Client, name, None)
    assert sdk_method is not None, f"bauplan.Client has no {name}: the protocol follows the SDK's names"
    sdk = inspect.signature(sdk_method).parameters
    for pname, kind, _ in _parameters(getattr(LakehouseClient, name))[1:]:  # after self
        sdk_name = SDK_NAMES.get((name, pname), pname)
        assert sdk_name in sdk, f"bauplan.Client.{name} has no parameter {sdk_name}"
        assert sdk[sdk_name].kind == kind, f"{name}({pname}): {kind.description} here, {sdk[sdk_name].kind} in the SDK"


def test_optional_capabilities_are_the_embedded_backend_s(tmp_path: Path) -> None:
    # The audit picks the DuckDB pushdown with isinstance(client, ReadsTableFiles); leases and gc need a root.
    local = LocalClient(tmp_path / "lakehouse")
    hosted = BauplanClient(client=object())  # a stand-in SDK client: the service is remote
    assert isinstance(local, ReadsTableFiles) and isinstance(local, StoredInDirectory)
    assert not isinstance(hosted, ReadsTableFiles) and not isinstance(hosted, StoredInDirectory)
    # `schema: evolve` adds columns only where the backend can (isinstance(client, EvolvesTableSchema)).
    assert isinstance(local, EvolvesTableSchema) and not isinstance(hosted, EvolvesTableSchema)
