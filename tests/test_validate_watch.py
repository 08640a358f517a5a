"""`wap validate --watch` (issue 16 item 3): a real `wap` process on a copy of the shipped gx/, edited as a person
edits it, read back line by line; and what the lean commands (`wap validate`, `wap suite check`, `wap --help`,
`wap suite show`) import, read from `python -X importtime` of the real commands.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gate_fixtures import REPO

from flows.demo.data import generate_titanic, write_csv
from flows.suite.watch import SaveWatcher

ROW_COUNT_RULE = 1  # gx/expectations/titanic.json: expect_table_row_count_to_be_between (min 1, max 100M)


def _environment(gx: Path) -> dict[str, str]:
    return {**os.environ, "WAP_GX_DIR": str(gx), "WAP_DATASETS": str(gx / "datasets.yml"), "COLUMNS": "250"}


class _Lines:
    """A process's stdout, line by line, as it is said (a reader thread: a pipe read must never block the test)."""

    def __init__(self, stream) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, pattern: str, timeout: float) -> str:
        """The first new line matching ``pattern``; fails with every line seen if none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s; seen: {self.seen}")
            if line is None:
                pytest.fail(f"the process ended before a line matching {pattern!r}; seen: {self.seen}")
            self.seen.append(line)
            if re.search(pattern, line):
                return line


def _save(path: Path, suite: dict) -> None:
    path.write_text(json.dumps(suite, indent=2), encoding="utf-8")


@pytest.mark.subprocess
def test_watch_says_each_saves_verdict_and_survives_broken_saves(shipped_gx: Path, tmp_path: Path) -> None:
    source = write_csv(generate_titanic(891), tmp_path / "titanic.csv")
    suite_path = shipped_gx / "expectations" / "titanic.json"
    suite = json.loads(suite_path.read_text())
    rule = suite["expectations"][ROW_COUNT_RULE]
    assert rule["type"] == "expect_table_row_count_to_be_between"
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "validate", "titanic", "--source", str(source), "--lakehouse",
         str(tmp_path / "no-lakehouse"), "--watch"],
        cwd=REPO, env=_environment(shipped_gx), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = _Lines(process.stdout)
        watching = lines.until(r"^watching titanic: ", 120)
        assert "expectations/titanic.json" in watching and "expectations/titanic_table.json" in watching
        assert "checkpoints/titanic.json" in watching and "datasets.yml" in watching and "titanic.csv" in watching
        lines.until(r"^\[1\] passed: 37/37 expectations", 120)

        rule["kwargs"]["max_value"] = 10  # 891 rows: now too many
        _save(suite_path, suite)
        assert "expectations/titanic.json" in lines.until(r"^\[2\] saved ", 30)
        blocked = lines.until(r"^\[2\] (passed|blocked)", 30)
        assert blocked.startswith("[2] blocked: titanic: ") and "expect_table_row_count_to_be_between" in blocked
        assert "max_value=10" in blocked and "observed 891" in blocked

        rule["kwargs"]["max_value"] = 100_000_000
        _save(suite_path, suite)
        lines.until(r"^\[3\] saved ", 30)
        assert lines.until(r"^\[3\] (passed|blocked)", 30).startswith("[3] passed: 37/37 expectations")

        suite_path.write_text('{"name": "titanic", "expectations": [', encoding="utf-8")  # a save mid-edit
        lines.until(r"^\[4\] saved ", 30)
        broken = lines.until(r"^\[4\] ", 30)
        assert re.match(r"^\[4\] not validated: .*expectations/titanic\.json: invalid JSON at line 1", broken), broken

        suite["expectations"].append({"type": "expect_column_values_to_be_shiny", "kwargs": {"column": "Age"}})
        _save(suite_path, suite)
        lines.until(r"^\[5\] saved ", 30)
        unknown = lines.until(r"^\[5\] ", 30)
        assert "not validated: " in unknown and "unknown expectation type 'expect_column_values_to_be_shiny'" in unknown

        suite["expectations"].pop()
        _save(suite_path, suite)
        lines.until(r"^\[6\] saved ", 30)
        assert lines.until(r"^\[6\] (passed|blocked|not)", 30).startswith("[6] passed: 37/37 expectations")
        lines.until(r"^\[6\] data docs: ", 30)
        # Each numbered validation said exactly one verdict (the broken saves one line each, then nothing).
        for n in range(1, 7):
            said = [line for line in lines.seen if line.startswith(f"[{n}] ") and " saved " not in f" {line[4:]}"]
            verdicts = [line for line in said if not line.startswith(f"[{n}] data docs")]
            assert len(verdicts) == 1, (n, lines.seen)

        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "stopped watching titanic" in stderr
    assert "Traceback" not in stderr, stderr


@pytest.mark.subprocess
def test_watch_refuses_an_unknown_dataset_before_watching(shipped_gx: Path, tmp_path: Path) -> None:
    source = write_csv(generate_titanic(20), tmp_path / "titanic.csv")
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "validate", "nosuch", "--source", str(source), "--watch"],
        cwd=REPO, env=_environment(shipped_gx), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done
    assert done.stderr.strip().startswith("error: unknown dataset 'nosuch'") and len(done.stderr.splitlines()) == 1


def test_a_save_burst_is_one_change(tmp_path: Path) -> None:
    """An editor's save (truncate, write in parts, rename over) is answered once, after the last write."""
    watched, other = tmp_path / "suite.json", tmp_path / "other.json"
    watched.write_text("{}")
    other.write_text("{}")
    watcher = SaveWatcher([watched, other], poll_seconds=0.05)

    def burst() -> None:
        time.sleep(0.2)
        watched.write_text("")
        for part in range(1, 6):  # each write inside one poll of the one before
            time.sleep(0.02)
            watched.write_text(json.dumps({"part": part}))
        replacement = tmp_path / "suite.json.tmp"
        replacement.write_text('{"part": "final"}')
        replacement.replace(watched)

    writer = threading.Thread(target=burst)
    writer.start()
    changed = watcher.wait()
    writer.join()
    assert changed == [watched]
    assert json.loads(watched.read_text()) == {"part": "final"}  # the burst was over when wait returned
    other.write_text('{"x": 1}')
    assert watcher.wait() == [other]  # the next save is a change of its own, the earlier one not again


def _imported(*args: str, env: dict[str, str]) -> tuple[set[str], subprocess.CompletedProcess]:
    """The modules a real `wap ARGS` process imports (`python -X importtime` writes one line per module)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "flows.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    names = {m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", done.stderr, re.M)}
    return names, done


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


@pytest.mark.subprocess
def test_validate_and_suite_check_import_only_what_they_need(shipped_gx: Path, tmp_path: Path) -> None:
    env = _environment(shipped_gx)
    source = write_csv(generate_titanic(891), tmp_path / "titanic.csv")
    names, done = _imported("validate", "titanic", "--source", str(source), "--lakehouse", str(tmp_path / "x"), env=env)
    assert done.returncode == 0 and "passed: 37/37 expectations" in done.stdout, done.stderr[-2000:]
    assert "great_expectations" in _top(names)
    assert "prefect" not in _top(names), sorted(n for n in names if n.startswith("prefect"))[:10]

    names, done = _imported("suite", "check", "titanic", "--source", str(source), env=env)
    assert done.returncode == 0 and "ok: no problems found" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "prefect" not in _top(names)

    for args in (["--help"], ["suite", "show", "titanic"]):
        names, done = _imported(*args, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        heavy = _top(names) & {"prefect", "great_expectations", "pyiceberg", "duckdb", "pandas"}
        assert not heavy, (args, heavy)
