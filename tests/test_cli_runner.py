"""The in-process CLI runner answers as a `wap` process does, and leaves nothing behind in the test process."""

from __future__ import annotations

import logging
import os
import sys

import pytest
from cli_runner import run_cli, run_cli_process
from lakehouse_worker import write_csv

from flows.lakehouse import MAIN, connect


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runner") / "lake"
    source = write_csv(root.parent / "a.csv", 5)
    client = connect("local", root, author="tester")
    client.create_table("t", str(source), branch=MAIN)
    client.import_data("t", str(source), branch=MAIN)
    return root


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "args",
    [
        ["tables"],
        ["query", "SELECT count(*) AS n FROM t"],
        ["query", "DROP TABLE t"],  # exit 2, one line on stderr
        ["log", "--ref", "main@deadbeefdeadbeef"],
        ["gc", "--older-than", "soon"],
    ],
    ids=["tables", "query", "query-refused", "log-bad-ref", "gc-bad-duration"],
)
def test_in_process_and_subprocess_answer_alike(lake, args):
    inside = run_cli(*args, "--lakehouse", str(lake))
    process = run_cli_process(*args, "--lakehouse", str(lake))
    assert inside.returncode == process.returncode, (inside, process)
    assert inside.stdout == process.stdout
    assert inside.stderr.strip().splitlines()[-1:] == process.stderr.strip().splitlines()[-1:]


def test_an_error_exit_leaves_logging_streams_and_environment_as_they_were(lake, monkeypatch):
    monkeypatch.delenv("WAP_RUNNER_PROBE", raising=False)
    stderr, disabled = sys.stderr, logging.root.manager.disable
    result = run_cli("query", "DROP TABLE t", "--lakehouse", str(lake), env={"WAP_RUNNER_PROBE": "1"})
    assert result.returncode == 2 and "only read-only SELECT" in result.stderr
    assert sys.stderr is stderr
    assert logging.root.manager.disable == disabled
    assert "WAP_RUNNER_PROBE" not in os.environ
