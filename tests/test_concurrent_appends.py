"""Concurrent appends to one table: the later ones find main moved, rebase their batch onto it, re-audit, publish.

Real `wap run` processes against one embedded lakehouse and the session's Prefect server. A run paused before
its publish (`WAP_PAUSE_AT=publish`, SIGSTOP) makes the race deterministic: another append publishes first.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from reliability_helpers import PausedRun, assert_one_line_error, declare, gate_branches, gate_env, run_wap, wap_cmd

from flows.demo.data import generate_titanic, write_csv
from flows.lakehouse import MAIN, connect

pytestmark = pytest.mark.subprocess


@pytest.fixture
def setup(prefect_api: str, tmp_path: Path):
    """A declared append dataset whose table on main holds passengers 1..200."""
    first = write_csv(generate_titanic(200, seed=1), tmp_path / "first.csv")
    declared = declare(
        tmp_path / "datasets.yml",
        {"titanic": {"source": str(first), "table": "titanic", "checkpoint": "titanic", "mode": "append"}},
    )
    env = gate_env(prefect_api, WAP_DATASETS=str(declared))
    lake = tmp_path / "lake"
    assert run_wap("run", "titanic", "--lakehouse", str(lake), env=env).returncode == 0
    return env, lake


def _batch(tmp_path: Path, name: str, n: int, first_id: int, seed: int) -> str:
    return str(write_csv(generate_titanic(n, seed=seed, first_id=first_id), tmp_path / f"{name}.csv"))


def _args(source: str, lake: Path, *extra: str) -> list[str]:
    return ["run", "titanic", "--source", source, "--lakehouse", str(lake), *extra]


def _ids(lake: Path, ref: str = MAIN) -> list[int]:
    return sorted(connect("local", lake).scan("titanic", ref=ref).column("PassengerId").to_pylist())


def _race(tmp_path: Path, env: dict[str, str], lake: Path, fast_first_id: int, *fast_args: str):
    """Passengers 201..230 appended by a run paused before its publish while another run (30 passengers from
    `fast_first_id`) publishes; then the paused one resumes. Returns its result and main's head before it."""
    slow = PausedRun("publish", _args(_batch(tmp_path, "slow", 30, 201, seed=2), lake), env)
    fast = run_wap(*_args(_batch(tmp_path, "fast", 30, fast_first_id, seed=3), lake, *fast_args), env=env)
    assert fast.returncode == 0, fast.stdout + fast.stderr
    published = connect("local", lake).get_branch(MAIN).hash
    return slow.resume(), published


def test_an_append_that_lost_the_race_is_rebased_re_audited_and_published(setup, tmp_path):
    env, lake = setup
    result, fast_commit = _race(tmp_path, env, lake, 231)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "main moved under" in result.stdout and "rebased 30 rows onto main" in result.stdout
    assert result.stdout.count("audit passed") == 2  # the audit ran again, on the rebased state

    assert _ids(lake) == list(range(1, 261))  # every row exactly once
    client = connect("local", lake)
    head = client.get_commits(MAIN, limit=1)[0]
    props = head.properties
    assert (props["wap.rebases"], props["wap.based_on"], props["gx.success"]) == ("1", fast_commit, "true")
    assert props["wap.rebased_from"] and props["wap.rebased_from"] != props["wap.audited_commit"]
    assert props["gx.suites"] == "titanic + titanic_table"
    assert props["wap.rows"] == "260" == str(client.get_table("titanic", MAIN).records)
    assert gate_branches(lake) == []


def test_two_appends_whose_ids_collide_publish_exactly_one(setup, tmp_path):
    """Each batch is clean on its own and against the main it started from; rebased onto the other's publish,
    the table suite sees ids 221..230 twice and blocks it."""
    env, lake = setup
    result, published = _race(tmp_path, env, lake, 221)
    message = assert_one_line_error(result, (1,), "titanic_table on the table as it would be published")
    assert "expect_column_values_to_be_unique on column 'PassengerId': 20 unexpected value(s)" in message
    assert connect("local", lake).get_branch(MAIN).hash == published
    assert _ids(lake) == [*range(1, 201), *range(221, 251)]  # main and the batch that published first
    assert gate_branches(lake) == []


def test_a_replace_racing_an_append_stays_a_conflict(setup, tmp_path):
    env, lake = setup
    result, published = _race(tmp_path, env, lake, 1, "--mode", "replace")  # a 30-row snapshot, ids 1..30
    assert_one_line_error(result, (3,), "merge conflict", "bauplan.titanic")
    assert connect("local", lake).get_branch(MAIN).hash == published
    assert _ids(lake) == list(range(1, 31))  # the replace's rows, nothing of the append
    assert gate_branches(lake) == []


def test_eight_concurrent_appends_all_publish_each_row_once_each_state_audited(setup, tmp_path):
    env, lake = setup
    gates = 8
    # 100 rows each: small batches of generated passengers can trip the suite's Age completeness rule by chance.
    sources = [_batch(tmp_path, f"b{i}", 100, 201 + 100 * i, seed=10 + i) for i in range(gates)]
    # Eight gates at once on the session's SQLite-backed Prefect test server (shared with the other worker's tests)
    # can keep it answering 503 past Prefect's default 5 client retries (a CI run failed so, exit 4 from Prefect's
    # client). The test is about the lakehouse's races, so the clients wait longer, as a user may configure.
    env = {**env, "PREFECT_CLIENT_MAX_RETRIES": "10"}
    procs = [
        subprocess.Popen(wap_cmd(*_args(src, lake)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for src in sources
    ]
    results = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    for out, err, code in results:
        assert code == 0, (out + err)[-3000:]

    assert _ids(lake) == list(range(1, 201 + 100 * gates))  # every row of every batch exactly once
    client = connect("local", lake)
    publishes = [c for c in client.get_commits(MAIN) if c.properties.get("wap.mode") == "append"]
    assert len(publishes) == gates + 1  # the first load and the eight batches
    for commit in publishes:
        # The audit that passed is of the very state published: the rows it counted are the rows main holds there.
        published_rows = client.get_table("titanic", f"{MAIN}@{commit.hash}").records
        assert commit.properties["gx.success"] == "true"
        assert commit.properties["gx.suites"] == "titanic + titanic_table"
        assert commit.properties["wap.rows"] == str(published_rows), commit.properties
    rebased = sum(int(c.properties["wap.rebases"]) > 0 for c in publishes)
    print(f"{gates} concurrent appends: all published, {rebased} after a rebase")
    assert rebased > 0  # eight at once on two cores: some lose the race
    assert gate_branches(lake) == []
