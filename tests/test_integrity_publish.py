"""The gate publishes exactly the commit it audited, or nothing; `wap gc` never takes a live run's branch.

Regression tests for a hostile sequence that used to publish blocked data: a run is stopped between its
audit and its publish (``WAP_PAUSE_AT=publish`` makes the gate SIGSTOP itself there), `wap gc` deletes
its branch, a second run recreates the branch under the same name with bad data and is blocked; the first
run, let go, used to merge the branch *by name*, publishing the second run's blocked rows under a commit
claiming `gx.success=true`. The paused run is a real `wap` process; the commands run around it (gc, the
second run) go through the CLI in-process; all against a real Prefect server.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from gate_fixtures import run_cli
from reliability_helpers import PausedRun, assert_one_line_error, gate_env

from flows.demo.data import corrupt, generate_titanic, write_csv
from flows.lakehouse import MAIN, connect

pytestmark = pytest.mark.subprocess

BRANCH = "alice.wap_titanic_0badc0de"


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, str]:
    clean = generate_titanic(891, seed=7)
    return {
        "clean": str(write_csv(clean, tmp_path / "clean.csv")),
        "more": str(write_csv(generate_titanic(50, seed=8), tmp_path / "more.csv")),
        "bad": str(write_csv(corrupt(clean, "null_passenger_id"), tmp_path / "bad.csv")),
    }


def _main_state(lake: Path) -> tuple[str, list]:
    client = connect("local", lake)
    head = client.get_branch(MAIN).hash
    tables = client.get_tables(MAIN)
    rows = sorted(client.scan("titanic", ref=MAIN).to_pylist(), key=str) if tables else []
    return head, rows


def _run_paused(step: str, sources, lake: Path, env, *extra: str) -> PausedRun:
    args = ["run", "titanic", "--source", sources["clean"], "--branch", BRANCH, "--lakehouse", str(lake), *extra]
    return PausedRun(step, args, env)


def _gc_once_the_heartbeat_is_stale(lake: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    time.sleep(1.5)  # the frozen run's heartbeat is now older than its ttl (WAP_LEASE_TTL=1)
    gc = run_cli("gc", "--older-than", "0s", "--force", "--lakehouse", str(lake), env=env)
    assert gc.returncode == 0 and BRANCH in gc.stdout and "deleted" in gc.stdout, gc.stdout + gc.stderr
    return gc


def test_a_recreated_branch_is_not_published_by_the_run_that_audited_the_old_one(prefect_api, tmp_path, sources):
    lake = tmp_path / "lake"
    env = gate_env(prefect_api, WAP_LEASE_TTL="1")
    first = _run_paused("publish", sources, lake, env)
    try:
        before = _main_state(lake)
        _gc_once_the_heartbeat_is_stale(lake, env)
        second = run_cli(
            "run", "titanic", "--source", sources["bad"], "--branch", BRANCH, "--keep-failed-branch",
            "--lakehouse", str(lake), env=env,
        )  # fmt: skip
        assert second.returncode == 1, second.stdout + second.stderr
        assert connect("local", lake).has_branch(BRANCH)  # the blocked data waits on the same branch name
        result = first.resume()
    finally:
        first.kill()
    message = assert_one_line_error(result, (3,), "not published", BRANCH, "deleted and recreated")
    assert "audited commit" in message
    assert _main_state(lake) == before, "main changed: the first run published data it did not audit"
    for commit in connect("local", lake).get_commits(MAIN):
        assert commit.properties.get("wap.source") != sources["bad"]


def test_a_branch_written_to_after_the_audit_is_not_published(prefect_api, tmp_path, sources):
    lake = tmp_path / "lake"
    env = gate_env(prefect_api)
    first = _run_paused("publish", sources, lake, env)
    try:
        before = _main_state(lake)
        client = connect("local", lake)
        client.import_data("titanic", sources["more"], branch=BRANCH)  # unaudited rows on top of the audited ones
        result = first.resume()
    finally:
        first.kill()
    assert_one_line_error(result, (3,), "not published", BRANCH, "moved after the audit")
    assert _main_state(lake) == before


def test_a_branch_deleted_before_the_audit_ends_not_published_without_a_false_rollback(prefect_api, tmp_path, sources):
    lake = tmp_path / "lake"
    env = gate_env(prefect_api, WAP_LEASE_TTL="1")
    first = _run_paused("audit", sources, lake, env)
    try:
        before = _main_state(lake)
        _gc_once_the_heartbeat_is_stale(lake, env)
        result = first.resume()
    finally:
        first.kill()
    assert_one_line_error(result, (3,), "not published", BRANCH, "was deleted")
    assert "rolled back: deleted branch" not in result.stdout  # it did not delete anything: gc had
    assert _main_state(lake) == before


def test_gc_keeps_the_branch_of_a_live_run_and_the_run_then_publishes(prefect_api, tmp_path, sources):
    lake = tmp_path / "lake"
    env = gate_env(prefect_api)  # default ttl (60 s): a pause of a few seconds keeps the lease live
    first = _run_paused("audit", sources, lake, env)
    try:
        gc = run_cli("gc", "--older-than", "0s", "--force", "--lakehouse", str(lake), env=env)
        assert gc.returncode == 0, gc.stdout + gc.stderr
        assert BRANCH in gc.stdout and "kept: live run" in gc.stdout
        assert connect("local", lake).has_branch(BRANCH)
        result = first.resume()
    finally:
        first.kill()
    assert result.returncode == 0, result.stdout[-3000:]
    client = connect("local", lake)
    head = client.get_commits(MAIN, limit=1)[0]
    assert head.properties["wap.branch"] == BRANCH and head.properties["gx.success"] == "true"
    audited = head.properties["wap.audited_commit"]
    assert audited in head.parent_hashes  # the merge's source is exactly the audited commit
    assert not client.has_branch(BRANCH)
