"""A block is the gate's verdict, not a crash: the run ends Failed named Blocked with a one-line message, no log
has a traceback, and the failure summary is said once, in the CLI, in-process and under a served deployment.

Real Prefect test server, real embedded lakehouse, the shipped GX project (a session copy), `wap serve` as a
real process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from gate_fixtures import latest_artifact, run_cli, run_cli_process

from flows.demo.data import corrupt, generate_titanic, write_csv
from flows.lakehouse import MAIN, connect

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("blocked")
    clean = generate_titanic(200, seed=4)
    pq.write_table(corrupt(clean, "bad_pclass"), folder / "bad.parquet")
    extra = clean.append_column("Extra", pa.array(["x"] * clean.num_rows))
    pq.write_table(extra, folder / "extra.parquet")
    return {
        "clean": write_csv(clean, folder / "clean.csv"),
        "bad": folder / "bad.parquet",
        "extra": folder / "extra.parquet",
    }


def _api() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _flow_run(flow_run_id: str) -> dict:
    response = httpx.get(f"{_api()}/flow_runs/{flow_run_id}", timeout=30)
    response.raise_for_status()
    return response.json()


def _logs(flow_run_id: str) -> list[str]:
    """Every log line Prefect recorded for the flow run and its tasks (the UI's Logs tab), as formatted."""
    time.sleep(2)  # the API log handler sends in batches
    response = httpx.post(
        f"{_api()}/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}, timeout=30
    )
    response.raise_for_status()
    return [log["message"] for log in response.json()]


def _task_states(flow_run_id: str) -> dict[str, str]:
    response = httpx.post(f"{_api()}/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}}, timeout=30)
    response.raise_for_status()
    return {t["name"]: t["state"]["name"] for t in response.json()}


def test_a_blocked_run_ends_in_a_named_state_without_a_traceback(files, tmp_path):
    lake = tmp_path / "lake"
    result = run_cli("run", "titanic", "--source", str(files["bad"]), "--lakehouse", str(lake))
    assert result.returncode == 1, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert "Traceback" not in said and "encountered an exception" not in said
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("blocked: titanic: 1 of ") and "Pclass" in last

    run = _flow_run(latest_artifact("titanic-validation")["flow_run_id"])
    assert run["state"]["type"] == "FAILED" and run["state"]["name"] == "Blocked"
    message = run["state"]["message"]
    assert "\n" not in message and message.startswith("blocked by the audit: titanic: 1 critical rule(s) failed")
    assert "encountered an exception" not in message
    assert f"Finished in state Blocked('{message}'" in said
    logs = _logs(run["id"])
    assert logs and not [line for line in logs if "Traceback" in line], logs
    tasks = _task_states(run["id"])  # the audit did not fail: its verdict is the flow's to act on (then rolled back)
    assert {name.split()[0]: state for name, state in tasks.items()} == {"write": "RolledBack", "audit": "RolledBack"}
    assert not connect("local", lake).has_table("titanic", MAIN)


@pytest.mark.subprocess
def test_the_failure_summary_is_said_once(files, tmp_path):
    """As a user's terminal shows `wap run` (a real process): the failed rule in the audit's log and in the error
    line, not once more per log record, traceback and state (it was six times)."""
    from prefect.settings import PREFECT_API_URL

    env = {"PREFECT_API_URL": PREFECT_API_URL.value()}
    result = run_cli_process(
        "run", "titanic", "--source", str(files["bad"]), "--lakehouse", str(tmp_path / "l"), env=env
    )
    assert result.returncode == 1, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert "Traceback" not in said
    finding = "expect_column_values_to_be_in_set on column 'Pclass' (value_set=[1, 2, 3])"
    assert said.count(finding) == 2, said
    assert result.stderr.strip().splitlines()[-1].count(finding) == 1


def test_a_schema_block_is_a_blocked_state_too(files, tmp_path):
    lake = tmp_path / "lake"
    assert run_cli("run", "titanic", "--source", str(files["clean"]), "--lakehouse", str(lake)).returncode == 0
    result = run_cli("run", "titanic", "--source", str(files["extra"]), "--mode", "append", "--lakehouse", str(lake))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    report = latest_artifact("titanic-validation")
    assert report["data"].startswith("# titanic: BLOCKED by the schema check")
    run = _flow_run(report["flow_run_id"])
    assert (run["state"]["type"], run["state"]["name"]) == ("FAILED", "Blocked")
    assert run["state"]["message"].startswith("blocked by the schema check")
    logs = _logs(run["id"])
    assert not [line for line in logs if "Traceback" in line], logs


def test_run_gate_gives_the_caller_the_outcome_of_a_blocked_run(files, tmp_path):
    from flows.gate import AuditFailedError, run_gate

    with pytest.raises(AuditFailedError) as blocked:
        run_gate("titanic", source=str(files["bad"]), lakehouse=str(tmp_path / "lake"))
    outcome = blocked.value.outcome
    assert outcome is not None and outcome.dataset == "titanic" and not outcome.published
    assert outcome.audit is blocked.value.result and outcome.audited_commit


@pytest.mark.subprocess
def test_a_served_blocked_run_is_named_and_logs_no_traceback(files, tmp_path):
    """Under `wap serve` a blocked run is Failed named Blocked, and neither the run's logs nor the serving
    process's output has a traceback (Prefect logged three for one block)."""
    api = _api()
    declared = tmp_path / "datasets.yml"
    declared.write_text(
        yaml.safe_dump(
            {
                "datasets": {
                    "titanic_bad": {"source": str(files["bad"]), "table": "titanic_bad", "checkpoint": "titanic"}
                }
            }
        )
    )
    env = {
        **os.environ,
        "PREFECT_API_URL": api,
        "WAP_DATASETS": str(declared),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        serve = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "serve", "--lakehouse", str(tmp_path / "lake")],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        deployment = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and deployment is None:
            found = httpx.post(f"{api}/deployments/filter", json={"limit": 50, "offset": 0}, timeout=30).json()
            deployment = next((d for d in found if d["name"] == "titanic_bad"), None)
            time.sleep(1)
        assert deployment is not None, log.read_text()
        for _ in range(20):  # the busy test server answers 503 for a moment at times
            created = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={}, timeout=30)
            if created.status_code != 503:
                break
            time.sleep(1)
        created.raise_for_status()
        state: dict = {}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = _flow_run(created.json()["id"])["state"]
            if state["type"] in ("COMPLETED", "FAILED", "CRASHED"):
                break
            time.sleep(1)
        assert (state["type"], state["name"]) == ("FAILED", "Blocked"), state
        time.sleep(3)  # the run's process exits after reporting its state
        logs = _logs(created.json()["id"])
        assert not [line for line in logs if "Traceback" in line or "unexpected exception" in line], logs
    finally:
        os.killpg(serve.pid, 15)
        serve.wait(timeout=30)
    served = log.read_text()
    assert "Finished in state Blocked(" in served, served
    assert "Traceback" not in served and "unexpected exception" not in served, served
