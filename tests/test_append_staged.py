"""Append mode on a backend that cannot list data files (Bauplan): the batch is staged alone on its own branch.

The hosted service is unreachable here, so `BauplanShapedClient` stands in for it: the real embedded lakehouse
seen only through the `LakehouseClient` protocol Bauplan's backend implements, without the `ReadsTableFiles`
capability (data files) or `EvolvesTableSchema`. Everything it does goes to the real lakehouse on real files;
the gate then takes exactly the path it takes on Bauplan (`flows/gate/staging.py`). Real GX context, shipped
suites; the gate tests run the real flow on a real Prefect test server.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from gate_fixtures import latest_artifact

from flows.audit import audit_table
from flows.audit.gx_project import BATCH, TABLE
from flows.datasets import get_dataset
from flows.demo.data import generate_titanic
from flows.gate.naming import is_gate_branch
from flows.gate.staging import check_staged_batch, isolate_batch, stage_batch, staging_branch
from flows.lakehouse import MAIN, ConcurrentUpdateError, LakehouseClient, ReadsTableFiles, connect
from flows.lakehouse.protocol import EvolvesTableSchema

PROTOCOL = [
    "create_branch", "has_branch", "get_branch", "delete_branch", "get_branches", "get_commits", "merge_branch",
    "get_tables", "has_table", "get_table", "create_table", "import_data", "scan", "query", "info",
]  # fmt: skip


def append_titanic():
    return dataclasses.replace(get_dataset("titanic"), mode="append")


class BauplanShapedClient:
    """The embedded lakehouse through Bauplan's capabilities only (see the module docstring)."""

    backend = "bauplan"

    def __init__(self, inner: LakehouseClient) -> None:
        self._inner = inner

    def __getattr__(self, name: str):
        if name not in PROTOCOL:
            raise AttributeError(name)  # data_files, scan_data_files, fit_source, add_new_columns: not on Bauplan
        return getattr(self._inner, name)


def _parquet(table: pa.Table, path: Path) -> str:
    pq.write_table(table, path)
    return str(path)


def _main_with(lake: Path, rows: int, tmp_path: Path) -> LakehouseClient:
    local = connect("local", lake)
    local.create_branch("setup", from_ref=MAIN)
    source = _parquet(generate_titanic(rows, seed=1, first_id=1), tmp_path / "main.parquet")
    local.create_table("titanic", source, branch="setup")
    local.import_data("titanic", source, branch="setup")
    local.merge_branch("setup", MAIN)
    local.delete_branch("setup")
    return local


def _append_on_branch(client, branch: str, source: str) -> tuple[str, str]:
    base = client.create_branch(branch, from_ref=MAIN).hash
    client.import_data("titanic", source, branch=branch)
    return base, client.get_branch(branch).hash


def test_the_stand_in_has_bauplans_capabilities_only(tmp_path):
    client = BauplanShapedClient(connect("local", tmp_path / "lake"))
    assert not isinstance(client, ReadsTableFiles) and not isinstance(client, EvolvesTableSchema)
    assert client.get_branch(MAIN).name == MAIN


def test_the_staged_batch_is_exactly_the_batch_and_audits_as_the_files_path_does(tmp_path, shipped_gx):
    """Same commits, two ways to find the batch: the staged copy (Bauplan) and the added data files (embedded):
    GX's results of both suites are equal, and the staged table holds exactly the source's rows."""
    local = _main_with(tmp_path / "lake", 300, tmp_path)
    client = BauplanShapedClient(local)
    batch = generate_titanic(50, seed=2, first_id=301)
    source = _parquet(batch, tmp_path / "batch.parquet")
    base, commit = _append_on_branch(client, "alice.wap_titanic_0000beef", source)
    dataset = append_titanic()
    staged = isolate_batch(client, dataset, source, "alice.wap_titanic_0000beef", base=base, commit=commit)
    assert staged is not None and staged.startswith(staging_branch("alice.wap_titanic_0000beef") + "@")
    staged_rows = local.scan("titanic", ref=staged)
    assert staged_rows.num_rows == 50
    assert sorted(staged_rows.column("PassengerId").to_pylist()) == list(range(301, 351))

    kwargs = dict(ref=f"alice.wap_titanic_0000beef@{commit}", checkpoint="titanic", gx_dir=shipped_gx, appended=True)
    via_staging = audit_table(client, "titanic", published=f"{MAIN}@{base}", batch_ref=staged, **kwargs)
    via_files = audit_table(local, "titanic", published=f"{MAIN}@{base}", **kwargs)
    assert via_staging.success and via_files.success
    for role, rows in ((BATCH, 50), (TABLE, 350)):
        a, b = via_staging.suite_audit(role), via_files.suite_audit(role)
        assert a.rows == b.rows == rows
        dumps = [
            [json.dumps({k: v for k, v in r.to_json_dict().items() if k != "meta"}, sort_keys=True, default=str)
             for r in s.validation_result.results]
            for s in (a, b)
        ]  # fmt: skip
        assert dumps[0] == dumps[1], role


def test_a_source_changed_between_the_two_imports_is_refused(tmp_path):
    local = _main_with(tmp_path / "lake", 300, tmp_path)
    client = BauplanShapedClient(local)
    batch = generate_titanic(50, seed=2, first_id=301)
    appended = _parquet(batch, tmp_path / "batch.parquet")
    base, commit = _append_on_branch(client, "alice.wap_titanic_0000cafe", appended)
    fares = batch.column("Fare")
    changed = batch.set_column(batch.schema.get_field_index("Fare"), "Fare", pc.add(fares, 1.0))
    staged = stage_batch(
        client, append_titanic(), _parquet(changed, tmp_path / "changed.parquet"), "alice.wap_titanic_0000cafe",
        base,
    )  # fmt: skip
    with pytest.raises(ConcurrentUpdateError, match=r"changed while it was imported .* differ in Fare\)"):
        check_staged_batch(
            client, append_titanic(), published=f"{MAIN}@{base}", written=f"alice.wap_titanic_0000cafe@{commit}",
            staged=staged,
        )  # fmt: skip


def test_on_the_first_run_the_staged_batch_is_the_whole_new_table(tmp_path):
    client = BauplanShapedClient(connect("local", tmp_path / "lake"))
    source = _parquet(generate_titanic(40, seed=3), tmp_path / "first.parquet")
    base = client.create_branch("alice.wap_titanic_00001234", from_ref=MAIN).hash
    client.create_table("titanic", source, branch="alice.wap_titanic_00001234")
    client.import_data("titanic", source, branch="alice.wap_titanic_00001234")
    commit = client.get_branch("alice.wap_titanic_00001234").hash
    dataset = append_titanic()
    staged = isolate_batch(client, dataset, source, "alice.wap_titanic_00001234", base=base, commit=commit)
    assert client.get_table("titanic", staged).records == 40


def test_gc_knows_staging_branches():
    assert is_gate_branch("alice.wap_titanic_0123abcd_batch")
    assert not is_gate_branch("alice.wap_titanic_0123abcd_batchy")


# ------------------------------------------------------------------ the whole gate, through the stand-in


@pytest.fixture
def bauplan_shaped(monkeypatch: pytest.MonkeyPatch):
    """The gate's lakehouse connections go to the stand-in (flows.gate.outcome.Lakehouse.connect's `connect`)."""
    import flows.gate.outcome as outcome

    real = outcome.connect
    monkeypatch.setattr(outcome, "connect", lambda backend, path: BauplanShapedClient(real("local", path)))


@pytest.mark.usefixtures("prefect_api", "bauplan_shaped")
def test_the_gate_appends_through_a_staged_batch_and_cleans_up(tmp_path):
    from flows.gate import AuditFailedError, run_gate

    lake = tmp_path / "lake"
    local = _main_with(lake, 300, tmp_path)
    clean = _parquet(generate_titanic(50, seed=2, first_id=301), tmp_path / "clean.parquet")
    outcome = run_gate("titanic", source=clean, lakehouse=str(lake), mode="append")
    assert outcome.published
    assert local.get_table("titanic", MAIN).records == 350
    assert [b.name for b in local.get_branches()] == [MAIN]  # the gate branch and its staging branch are gone
    report = latest_artifact("titanic-validation")["data"]
    assert "- **Suite titanic**: passed on the batch (50 rows)" in report
    assert "- **Suite titanic_table**: passed on the table as it would be published (350 rows)" in report

    head = local.get_branch(MAIN).hash
    colliding = _parquet(generate_titanic(20, seed=4, first_id=1), tmp_path / "colliding.parquet")
    with pytest.raises(AuditFailedError):
        run_gate("titanic", source=colliding, lakehouse=str(lake), mode="append")
    assert local.get_branch(MAIN).hash == head and local.get_table("titanic", MAIN).records == 350
    assert [b.name for b in local.get_branches()] == [MAIN]


def test_a_float_column_with_nan_passes_the_staging_check(tmp_path):
    """NaN equals nothing, itself included: the check bounds floats over their numbers and counts NaNs apart."""
    local = _main_with(tmp_path / "lake", 300, tmp_path)
    client = BauplanShapedClient(local)
    batch = generate_titanic(50, seed=2, first_id=301)
    fares = batch.column("Fare").to_pylist()
    fares[3] = float("nan")
    batch = batch.set_column(batch.schema.get_field_index("Fare"), "Fare", pa.array(fares, pa.float64()))
    source = _parquet(batch, tmp_path / "nan.parquet")
    base, commit = _append_on_branch(client, "alice.wap_titanic_0000d00d", source)
    staged = isolate_batch(client, append_titanic(), source, "alice.wap_titanic_0000d00d", base=base, commit=commit)
    assert local.get_table("titanic", staged).records == 50
