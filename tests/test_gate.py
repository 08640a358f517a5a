"""The WAP gate end to end: real Prefect test server, real embedded lakehouse, real GX context."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from gate_fixtures import REAL_TITANIC, latest_artifact

from flows.demo.data import CORRUPTIONS, corrupt, generate_titanic, write_csv
from flows.lakehouse import MAIN, SourceError, connect

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    clean = generate_titanic(891, seed=1)
    files = {"clean": write_csv(clean, folder / "clean.csv")}
    for kind in CORRUPTIONS:
        # Parquet keeps the corrupted Arrow types (a CSV would be re-inferred on the way in).
        pq.write_table(corrupt(clean, kind), folder / f"{kind}.parquet")
        files[kind] = folder / f"{kind}.parquet"
    return files


def _gate(**kwargs):
    from flows.gate import wap

    return wap("titanic", backend="local", **kwargs)


def _gate_branches(client) -> list[str]:
    return [b.name for b in client.get_branches() if ".wap_" in b.name]


def test_clean_data_is_published_and_branch_deleted(sources, lakehouse_dir):
    outcome = _gate(source=str(sources["clean"]), lakehouse=str(lakehouse_dir))
    client = connect("local", lakehouse_dir)
    assert outcome.published
    assert outcome.rows == 891
    assert client.get_table("titanic", MAIN).records == 891
    assert client.get_branch(MAIN).hash == outcome.published_commit
    assert not client.has_branch(outcome.branch)
    assert _gate_branches(client) == []


def test_published_commit_carries_the_audit(sources, lakehouse_dir):
    outcome = _gate(source=str(sources["clean"]), lakehouse=str(lakehouse_dir))
    head = connect("local", lakehouse_dir).get_commits(MAIN, limit=1)[0]
    props = head.properties
    assert head.hash == outcome.published_commit
    assert "titanic" in head.message and "passed" in head.message
    assert props["gx.suite"] == "titanic"
    assert props["gx.checkpoint"] == "titanic"
    assert props["gx.success"] == "true"
    assert int(props["gx.evaluated_expectations"]) == int(props["gx.successful_expectations"]) > 10
    assert props["gx.unsuccessful_expectations"] == "0"
    assert props["gx.run_id"] == outcome.audit.run_id
    assert props["gx.run_time"] == outcome.audit.run_time
    import great_expectations

    assert props["gx.version"] == great_expectations.__version__
    assert props["wap.source"] == str(sources["clean"])
    assert props["wap.rows"] == "891"
    assert props["wap.branch"] == outcome.branch
    assert props["prefect.flow_run_id"]


def test_published_report_artifacts(sources, lakehouse_dir):
    outcome = _gate(source=str(sources["clean"]), lakehouse=str(lakehouse_dir))
    report = latest_artifact("titanic-validation")
    assert report["type"] == "markdown"
    assert "PUBLISHED" in report["data"] and outcome.published_commit in report["data"]
    assert outcome.branch in report["data"] and str(sources["clean"]) in report["data"]
    # 891 rows is below PUSHDOWN_MIN_ROWS: the report says where the row metrics came from.
    assert (
        "(891 rows): 35 of 35 expectations passed; row metrics computed by GX on the table read into pandas"
        in (report["data"])
    )
    table = latest_artifact("titanic-expectations")
    assert table["type"] == "table"
    assert "PassengerId values must be unique" in str(table["data"])
    link = latest_artifact("titanic-data-docs")
    # Prefect stores a link artifact as the markdown "[text](url)": the page over http at WAP_DOCS_URL (by default
    # where `wap docs serve` listens), the page's file in the description.
    url = re.search(r"\((http://[^)]+)\)", link["data"]).group(1)
    page = Path(outcome.audit.data_docs_url.removeprefix("file://"))
    assert url.startswith("http://127.0.0.1:8900/validations/titanic/") and url.endswith(f"/{page.name}"), url
    assert page.is_file() and str(page) in link["description"], link["description"]


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_each_defect_is_blocked_and_main_unchanged(kind, sources, lakehouse_dir):
    from flows.gate import AuditFailedError

    published = _gate(source=str(sources["clean"]), lakehouse=str(lakehouse_dir))
    client = connect("local", lakehouse_dir)
    before = client.get_branch(MAIN).hash
    with pytest.raises(AuditFailedError) as blocked:
        _gate(source=str(sources[kind]), lakehouse=str(lakehouse_dir))
    failed = [e for e in blocked.value.result.expectations if not e.success]
    assert failed, kind
    assert client.get_branch(MAIN).hash == before == published.published_commit
    assert client.get_table("titanic", MAIN).records == 891
    assert _gate_branches(client) == []  # rolled back
    report = latest_artifact("titanic-validation")["data"]
    assert "BLOCKED" in report
    for expectation in failed:
        assert expectation.expectation_type in str(latest_artifact("titanic-expectations")["data"])
        if expectation.column:
            assert expectation.column in report


def test_blocked_error_names_expectations_and_bad_values(sources, lakehouse_dir):
    from flows.gate import AuditFailedError

    with pytest.raises(AuditFailedError) as blocked:
        _gate(source=str(sources["unknown_sex"]), lakehouse=str(lakehouse_dir))
    message = str(blocked.value)
    assert "\n" not in message
    assert "expect_column_values_to_be_in_set" in message and "Sex" in message
    bad = [e for e in blocked.value.result.expectations if not e.success][0].partial_unexpected_list
    assert bad and str(bad[0]) in message


def test_keep_failed_branch_for_inspection(sources, lakehouse_dir):
    from flows.gate import AuditFailedError

    with pytest.raises(AuditFailedError):
        _gate(
            source=str(sources["duplicate_ids"]),
            lakehouse=str(lakehouse_dir),
            keep_failed_branch=True,
            branch="tester.wap_titanic_keepme",
        )
    client = connect("local", lakehouse_dir)
    assert client.has_branch("tester.wap_titanic_keepme")
    assert client.get_table("titanic", "tester.wap_titanic_keepme").records > 0
    assert not client.has_table("titanic", MAIN)


def test_bad_source_leaves_nothing_behind(tmp_path, lakehouse_dir, sources):
    _gate(source=str(sources["clean"]), lakehouse=str(lakehouse_dir))
    client = connect("local", lakehouse_dir)
    before = client.get_branch(MAIN).hash
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\xff\xfe" * 1000)
    for source in (tmp_path / "missing.csv", tmp_path / "nothing-*.csv", garbage):
        with pytest.raises(SourceError):
            _gate(source=str(source), lakehouse=str(lakehouse_dir))
        assert client.get_branch(MAIN).hash == before
        assert _gate_branches(client) == []
    assert latest_artifact("titanic-validation")["data"].count("NOT PUBLISHED") == 1


def test_branch_that_exists_is_refused(sources, lakehouse_dir):
    from flows.lakehouse import BranchExistsError

    connect("local", lakehouse_dir).create_branch("tester.taken", MAIN)
    with pytest.raises(BranchExistsError):
        _gate(source=str(sources["clean"]), lakehouse=str(lakehouse_dir), branch="tester.taken")
    client = connect("local", lakehouse_dir)
    assert client.has_branch("tester.taken")  # someone else's branch is never deleted
    assert not client.has_table("titanic", MAIN)


@pytest.mark.skipif(not REAL_TITANIC.exists(), reason="../shared/data/titanic.csv is absent")
def test_real_titanic_is_published(lakehouse_dir):
    outcome = _gate(source=str(REAL_TITANIC), lakehouse=str(lakehouse_dir))
    assert outcome.published and outcome.rows == 891


def test_audit_outcomes_are_prefect_events(sources, lakehouse_dir, prefect_api):
    import time

    import httpx

    from flows.gate import AuditFailedError

    _gate(source=str(sources["clean"]), lakehouse=str(lakehouse_dir))
    with pytest.raises(AuditFailedError):
        _gate(source=str(sources["bad_pclass"]), lakehouse=str(lakehouse_dir))
    names: set[str] = set()
    for _ in range(30):  # events reach the server asynchronously
        response = httpx.post(
            f"{prefect_api}/events/filter",
            json={"filter": {"event": {"prefix": ["wap.audit."]}, "any_resource": {"id": ["wap.dataset.titanic"]}}},
            timeout=30,
        )
        response.raise_for_status()
        names = {e["event"] for e in response.json()["events"]}
        if {"wap.audit.passed", "wap.audit.failed"} <= names:
            break
        time.sleep(1)
    assert {"wap.audit.passed", "wap.audit.failed"} <= names


def test_write_retries_transient_backend_errors_only():
    from prefect.states import Failed

    from flows.gate.flow import _is_transient, write_to_branch
    from flows.lakehouse import BackendUnavailableError, InvalidNameError

    assert write_to_branch.retries == 3
    assert _is_transient(None, None, Failed(data=BackendUnavailableError("catalog busy")))
    for bad_input in (SourceError("source not found: x.csv"), InvalidNameError("bad name"), ValueError("x")):
        assert not _is_transient(None, None, Failed(data=bad_input))


def _heartbeats(api: str, flow_run_id: str) -> int:
    import httpx

    response = httpx.post(
        f"{api}/events/filter",
        json={
            "filter": {
                "event": {"name": ["prefect.flow-run.heartbeat"]},
                "any_resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
            }
        },
        timeout=30,
    )
    response.raise_for_status()
    return len(response.json()["events"])


def _published_flow_run(lakehouse_dir: Path) -> str:
    client = connect("local", lakehouse_dir)
    return client.get_commits(MAIN, limit=1)[0].properties["prefect.flow_run_id"]


def test_run_gate_skips_heartbeats_unless_the_user_set_them(sources, tmp_path, prefect_api):
    import time

    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.gate import run_gate

    run_gate("titanic", source=str(sources["clean"]), backend="local", lakehouse=str(tmp_path / "quiet"))
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        run_gate("titanic", source=str(sources["clean"]), backend="local", lakehouse=str(tmp_path / "beating"))
    quiet, beating = _published_flow_run(tmp_path / "quiet"), _published_flow_run(tmp_path / "beating")
    for _ in range(30):  # events reach the server asynchronously
        if _heartbeats(prefect_api, beating):
            break
        time.sleep(1)
    assert _heartbeats(prefect_api, beating) >= 1  # the user's setting is kept: the check can see heartbeats
    assert _heartbeats(prefect_api, quiet) == 0


def test_gate_with_duckdb_row_metrics_publishes_good_data_and_blocks_bad(sources, tmp_path, monkeypatch):
    from flows.gate import AuditFailedError, run_gate

    monkeypatch.setenv("WAP_AUDIT_PUSHDOWN", "always")  # Titanic is below the automatic threshold
    published = run_gate("titanic", source=str(sources["clean"]), backend="local", lakehouse=str(tmp_path))
    assert published.published and published.audit.row_metrics == "duckdb"
    assert "passed; row metrics computed by DuckDB" in latest_artifact("titanic-validation")["data"]
    with pytest.raises(AuditFailedError, match="expect_column_values_to_be_in_set on column 'Pclass'") as blocked:
        run_gate("titanic", source=str(sources["bad_pclass"]), backend="local", lakehouse=str(tmp_path))
    assert blocked.value.result.row_metrics == "duckdb"
    client = connect("local", tmp_path)
    assert client.get_branch(MAIN).hash == published.published_commit
    assert _gate_branches(client) == []
