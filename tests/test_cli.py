"""The `wap` command line as users run it: exit codes, one-line errors, no tracebacks.

Most commands run in-process (`run_cli`); what only a process shows (the console module itself, a demo
with its own temporary Prefect server, `wap serve`) runs as a real subprocess (`run_cli_process`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from gate_fixtures import latest_artifact, run_cli, run_cli_process

from flows.demo.data import corrupt, generate_titanic, write_csv
from flows.lakehouse import MAIN, connect


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-sources")
    clean = generate_titanic(891, seed=2)
    pq.write_table(corrupt(clean, "bad_pclass"), folder / "bad.parquet")
    return {"clean": write_csv(clean, folder / "clean.csv"), "bad": folder / "bad.parquet"}


@pytest.fixture
def env(prefect_api: str) -> dict[str, str]:
    # Subprocesses report to the session's Prefect server instead of starting their own.
    return {"PREFECT_API_URL": prefect_api, "WAP_GX_DIR": os.environ["WAP_GX_DIR"]}


def assert_clean_failure(result, code: int, *needles: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    message = result.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in message, message


@pytest.mark.subprocess
def test_help_lists_the_commands():
    result = run_cli_process("--help")
    assert result.returncode == 0
    for command in ("run", "validate", "demo", "serve", "branches", "tables", "log", "query"):
        assert command in result.stdout


@pytest.mark.subprocess
def test_run_publishes_then_inspection_commands_show_it(files, env, tmp_path):
    lake = str(tmp_path / "lake")
    result = run_cli_process("run", "titanic", "--source", str(files["clean"]), "--lakehouse", lake, env=env)
    assert result.returncode == 0, result.stderr
    assert "published titanic: 891 rows" in result.stdout
    head = connect("local", lake).get_branch(MAIN).hash

    branches = run_cli("branches", "--lakehouse", lake)
    assert branches.returncode == 0 and "main" in branches.stdout and head[:12] in branches.stdout
    assert ".wap_" not in branches.stdout
    tables = run_cli("tables", "--lakehouse", lake)
    assert tables.returncode == 0 and "bauplan.titanic" in tables.stdout and "891" in tables.stdout
    log = run_cli("log", "--lakehouse", lake, "--limit", "1")
    assert log.returncode == 0 and head[:12] in log.stdout and "gx.suite=titanic" in log.stdout
    query = run_cli("query", "select Sex, count(*) as n from titanic group by Sex order by Sex", "--lakehouse", lake)
    assert query.returncode == 0 and "female" in query.stdout and "male" in query.stdout


def test_run_blocked_exits_1_with_one_line(files, env, tmp_path):
    lake = str(tmp_path / "lake")
    result = run_cli("run", "titanic", "--source", str(files["bad"]), "--lakehouse", lake, env=env)
    assert_clean_failure(result, 1, "blocked:", "Pclass", "expect_column_values_to_be_in_set")
    assert not connect("local", lake).has_table("titanic", MAIN)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "nosuchdataset"], "unknown dataset 'nosuchdataset'"),
        (["run", "titanic", "--source", "/nonexistent/x.csv"], "source not found: /nonexistent/x.csv"),
        (["run", "titanic", "--source", "/nonexistent/*.csv"], "no file matches source /nonexistent/*.csv"),
        (["run", "titanic", "--branch", "../../etc", "--source", "x.csv"], "invalid branch name"),
        (["run", "titanic", "--backend", "nope"], "unknown backend 'nope'"),
        (["run"], "give one of DATASET, --group NAME or --all"),
        (["query", "drop table titanic"], "only read-only SELECT"),
        (["query", "select * from read_csv('/etc/passwd')"], "Permission"),
        (["tables", "--ref", "nosuchbranch"], "branch not found: nosuchbranch"),
        (["log", "--ref", "main@deadbeefdeadbeef"], "ref not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, needle, env, tmp_path):
    result = run_cli(*args, "--lakehouse", str(tmp_path / "lake"), env=env)
    assert_clean_failure(result, 2, needle)
    if (tmp_path / "lake").exists():
        client = connect("local", tmp_path / "lake")
        assert [b.name for b in client.get_branches()] == [MAIN]
        assert client.get_tables(MAIN) == []


def test_validate_audits_a_file_without_writing(files, env, tmp_path):
    ok = run_cli("validate", "titanic", "--source", str(files["clean"]), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "passed:" in ok.stdout and "PassengerId values must be unique" in ok.stdout
    # The page's link as every report gives it (http, for `wap docs serve`), then the file.
    import re

    assert re.search(r"^data docs: http://127\.0\.0\.1:8900/\S+\.html \(file /\S+\.html\)$", ok.stdout, re.M), ok.stdout
    bad = run_cli("validate", "titanic", "--source", str(files["bad"]), env=env)
    assert_clean_failure(bad, 1, "blocked:", "Pclass")
    missing = run_cli("validate", "titanic", "--source", str(tmp_path / "none.csv"), env=env)
    assert_clean_failure(missing, 2, "source not found")
    # It reads a lakehouse (to compare with main) but never creates or writes one.
    lake = tmp_path / "lake"
    assert (
        run_cli("validate", "titanic", "--source", str(files["clean"]), "--lakehouse", str(lake), env=env).returncode
        == 0
    )
    assert not lake.exists()


def _declare(tmp_path: Path, datasets: dict[str, Path]) -> Path:
    path = tmp_path / "datasets.yml"
    entries = {name: {"source": str(src), "table": name, "checkpoint": "titanic"} for name, src in datasets.items()}
    path.write_text(yaml.safe_dump({"datasets": entries}))
    return path


def test_run_all_publishes_every_dataset_concurrently(files, env, tmp_path):
    declared = _declare(tmp_path, {"titanic": files["clean"], "titanic_copy": files["clean"]})
    lake = str(tmp_path / "lake")
    result = run_cli("run", "--all", "--lakehouse", lake, env={**env, "WAP_DATASETS": str(declared)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("published") >= 2
    client = connect("local", lake)
    assert client.get_table("titanic", MAIN).records == 891
    assert client.get_table("titanic_copy", MAIN).records == 891
    assert [b.name for b in client.get_branches()] == [MAIN]


def test_run_all_reports_each_outcome(files, env, tmp_path):
    declared = _declare(tmp_path, {"good_one": files["clean"], "bad_one": files["bad"]})
    lake = str(tmp_path / "lake")
    result = run_cli("run", "--all", "--lakehouse", lake, env={**env, "WAP_DATASETS": str(declared)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "good_one" in result.stdout and "bad_one" in result.stdout and "blocked" in result.stdout
    client = connect("local", lake)
    assert client.has_table("good_one", MAIN) and not client.has_table("bad_one", MAIN)
    assert "BLOCKED" in latest_artifact("bad-one-validation")["data"]
    assert "PUBLISHED" in latest_artifact("good-one-validation")["data"]


@pytest.mark.subprocess
def test_demo_offline_with_its_own_prefect(tmp_path, isolated_gx):
    """`wap demo` on a machine with no Prefect server: both outcomes, artifacts in $PREFECT_HOME."""
    home = tmp_path / "prefect-home"
    env = {"PREFECT_HOME": str(home), "WAP_GX_DIR": os.environ["WAP_GX_DIR"]}
    result = run_cli_process("demo", "--lakehouse", str(tmp_path / "lake"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "published" in result.stdout and "blocked" in result.stdout
    assert "appended 100 rows, 991 in the table" in result.stdout  # the append scene
    assert "expect_column_values_to_be_unique on column 'PassengerId'" in result.stdout  # ids already on main
    assert "prefect server start" in result.stdout and "titanic-validation" in result.stdout
    client = connect("local", tmp_path / "lake")
    assert client.get_table("titanic", MAIN).records == 991  # the clean snapshot and the new passengers
    assert [b.name for b in client.get_branches()] == [MAIN]
    artifacts = subprocess.run(
        [sys.executable, "-m", "prefect", "artifact", "ls"],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "COLUMNS": "250"},  # the listing cuts keys at the terminal width
        timeout=180,
    )
    assert artifacts.returncode == 0, artifacts.stderr
    for key in ("titanic-validation", "titanic-expectations", "titanic-data-docs"):
        assert key in artifacts.stdout


@pytest.mark.subprocess
def test_demo_on_a_running_server_names_that_server_and_the_blocked_run(env, tmp_path):
    """With PREFECT_API_URL set, the demo points at that server's UI and the blocked run's page (whole lines, so
    they can be clicked), not at `prefect server start`."""
    import re

    import httpx

    result = run_cli_process("demo", "--lakehouse", str(tmp_path / "lake"), env={**env, "COLUMNS": "80"})
    assert result.returncode == 0, result.stdout + result.stderr
    ui = env["PREFECT_API_URL"].removesuffix("/api")
    assert "prefect server start" not in result.stdout
    assert f"in the Prefect server the demo ran on: {ui}/artifacts" in result.stdout.splitlines()
    found = re.search(rf"^the blocked run: {re.escape(ui)}/runs/flow-run/([0-9a-f-]{{36}})$", result.stdout, re.M)
    assert found, result.stdout
    run = httpx.get(f"{env['PREFECT_API_URL']}/flow_runs/{found.group(1)}", timeout=30).json()
    assert run["name"].startswith("wap-titanic") and run["state"]["type"] == "FAILED", run["name"]


@pytest.mark.subprocess
def test_serve_runs_a_dataset_from_its_deployment(files, env, tmp_path):
    """`wap serve` registers one deployment per dataset; a run created from it (as the UI does) publishes."""
    import time

    import httpx

    api = env["PREFECT_API_URL"]
    declared = tmp_path / "datasets.yml"
    declared.write_text(
        yaml.safe_dump(
            {
                "datasets": {
                    "titanic": {"source": str(files["clean"]), "checkpoint": "titanic", "schedule": "0 6 * * *"},
                    "titanic_bad": {"source": str(files["bad"]), "table": "titanic_bad", "checkpoint": "titanic"},
                }
            }
        )
    )
    lake = tmp_path / "lake"
    server_env = {**os.environ, **env, "WAP_DATASETS": str(declared), "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    serve = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", "--lakehouse", str(lake)],
        env=server_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deployments: dict[str, dict] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(deployments) < 2:
            found = httpx.post(f"{api}/deployments/filter", json={"limit": 50, "offset": 0}, timeout=30).json()
            deployments = {d["name"]: d for d in found if d["name"] in ("titanic", "titanic_bad")}
            time.sleep(1)
        assert set(deployments) == {"titanic", "titanic_bad"}, "deployments not registered"
        schedules = deployments["titanic"].get("schedules") or []
        assert any(s["schedule"].get("cron") == "0 6 * * *" for s in schedules)
        assert deployments["titanic"]["parameters"]["dataset"] == "titanic"

        # As the UI would: the busy test server answers 503 for a moment at times, and the UI retries too.
        for _ in range(20):
            run = httpx.post(f"{api}/deployments/{deployments['titanic']['id']}/create_flow_run", json={}, timeout=30)
            if run.status_code != 503:
                break
            time.sleep(1)
        run.raise_for_status()
        state = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = httpx.get(f"{api}/flow_runs/{run.json()['id']}", timeout=30).json()["state"]["type"]
            if state in ("COMPLETED", "FAILED", "CRASHED"):
                break
            time.sleep(1)
        assert state == "COMPLETED"
        assert connect("local", lake).get_table("titanic", MAIN).records == 891
    finally:
        os.killpg(serve.pid, 15)
        serve.wait(timeout=30)


def test_run_refuses_to_write_to_main_directly(files, env, tmp_path):
    result = run_cli(
        "run",
        "titanic",
        "--branch",
        "main",
        "--source",
        str(files["clean"]),
        "--lakehouse",
        str(tmp_path / "lake"),
        env=env,
    )
    assert_clean_failure(result, 2, "cannot write to main directly")
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(
    "args",
    [["query", "select 1"], ["tables"], ["branches"], ["log"], ["gc", "--dry-run"], ["query", "select 1", "--json"]],
)
def test_commands_that_publish_nothing_do_not_say_not_published(args, tmp_path):
    """Exit 3 (storage or catalog problem) from an inspection command: "error:", never "not published:"."""
    lake = tmp_path / "lake"
    connect("local", lake)
    (lake / "catalog.db").write_bytes(b"")  # an emptied catalog: refused with exit 3 by every command
    result = run_cli(*args, "--lakehouse", str(lake))
    assert_clean_failure(result, 3, "catalog", "is empty")
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: "), message
    assert result.stdout == "", result.stdout
