"""Output meant to be copied: `--json` on the inspection commands, and nothing cut with "…".

Regression tests for issue 10 item 8: piped, or at 80 columns, `wap tables` cut the metadata location and
`wap log` cut `prefect.flow_run_id` with "…". Every test runs `wap` as a real subprocess against a real
lakehouse built through the public client (no Prefect needed: a commit carries a flow run id property
exactly as the gate's publish writes it).
"""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from gate_fixtures import REPO

from flows.demo.data import generate_titanic, write_csv
from flows.lakehouse import MAIN, connect

pytestmark = pytest.mark.subprocess

FLOW_RUN_ID = str(uuid.UUID("0f3c2a5e-9b7d-4c1e-8a2f-6d5b4e3c2a10"))
LONG_SOURCE = "/data/incoming/" + "very_long_directory_name_" * 4 + "titanic.csv"


def wap(*args: str, columns: int = 80, timeout: float = 120) -> subprocess.CompletedProcess:
    """`wap ARGS` through a pipe (stdout is not a terminal), at the given terminal width."""
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "25"}
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO
    )


def wap_at_terminal(*args: str, columns: int = 80, timeout: float = 120) -> tuple[int, str]:
    """`wap ARGS` with stdout on a pseudo-terminal of `columns` columns; returns (exit code, output)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "25", "TERM": "dumb", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
    )
    os.close(follower)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], timeout)
            if not ready:
                raise AssertionError(f"wap {' '.join(args)} printed nothing for {timeout}s")
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        code = proc.wait(timeout=timeout)
        proc.stderr.close()
    return code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lakehouse with one published table, whose merge commit carries the gate's properties."""
    # A deep directory: the metadata location is far longer than 80 columns.
    root = tmp_path_factory.mktemp("json") / ("deep_directory_for_a_long_metadata_location_" * 2) / "lake"
    source = str(write_csv(generate_titanic(40, seed=3), root.parent / "titanic.csv"))
    client = connect("local", root, author="tester")
    client.create_branch("alice.wap_titanic_0123abcd", from_ref=MAIN)
    client.create_table("titanic", source, branch="alice.wap_titanic_0123abcd", replace=True)
    client.import_data("titanic", source, branch="alice.wap_titanic_0123abcd")
    client.merge_branch(
        "alice.wap_titanic_0123abcd",
        MAIN,
        commit_message="wap: publish bauplan.titanic (40 rows, audit titanic passed)",
        commit_properties={"wap.source": LONG_SOURCE, "gx.success": "true", "prefect.flow_run_id": FLOW_RUN_ID},
    )
    return root


def _metadata_location(lake: Path) -> str:
    location = connect("local", lake).get_table("titanic", MAIN).metadata_location
    assert location and len(location) > 80, location
    return location


# ------------------------------------------------------------------------------- piped: nothing is cut
def test_piped_tables_at_80_columns_show_the_whole_metadata_location(lake):
    result = wap("tables", "--lakehouse", str(lake))
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout, result.stdout
    assert _metadata_location(lake) in result.stdout, result.stdout


def test_piped_log_at_80_columns_shows_the_whole_flow_run_id(lake):
    result = wap("log", "--lakehouse", str(lake), "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout, result.stdout
    assert f"prefect.flow_run_id={FLOW_RUN_ID}" in result.stdout, result.stdout
    assert f"wap.source={LONG_SOURCE}" in result.stdout, result.stdout


def test_piped_query_at_80_columns_cuts_no_value(lake):
    long_value = "x" * 150
    result = wap("query", f"select '{long_value}' as a, Name from titanic limit 2", "--lakehouse", str(lake))
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout and long_value in result.stdout, result.stdout


# ---------------------------------------------------------------------- at a terminal: fold, not vanish
def _column_text(output: str, header: str) -> str:
    """The concatenated cell text of one column of a Rich table (folded values span several lines)."""
    lines = [line for line in output.splitlines() if line.count("│") >= 2 or line.count("┃") >= 2]
    head = next(line for line in lines if header in line)
    index = [cell.strip() for cell in head.replace("┃", "│").split("│")].index(header)
    return "".join(line.replace("┃", "│").split("│")[index].strip() for line in lines if line is not head)


def test_terminal_tables_fold_the_metadata_location(lake):
    code, output = wap_at_terminal("tables", "--lakehouse", str(lake), columns=80)
    assert code == 0, output
    assert "…" not in output, output
    assert max(len(line) for line in output.splitlines()) <= 80, output
    assert _column_text(output, "metadata_location") == _metadata_location(lake), output


def test_terminal_log_folds_the_flow_run_id(lake):
    code, output = wap_at_terminal("log", "--lakehouse", str(lake), "--limit", "1", columns=80)
    assert code == 0, output
    assert "…" not in output, output
    assert f"prefect.flow_run_id={FLOW_RUN_ID}" in _column_text(output, "properties"), output


# ------------------------------------------------------------------------------------------- --json
def _json(*args: str) -> object:
    result = wap(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # the whole of stdout is one JSON document


def test_branches_json(lake):
    client = connect("local", lake)
    assert _json("branches", "--lakehouse", str(lake)) == [
        {"branch": b.name, "commit": b.hash} for b in client.get_branches()
    ]


def test_tables_json(lake):
    assert _json("tables", "--lakehouse", str(lake)) == [
        {"table": "bauplan.titanic", "rows": 40, "columns": 12, "metadata_location": _metadata_location(lake)}
    ]


def test_log_json_has_full_hashes_iso_times_and_every_property(lake):
    entries = _json("log", "--lakehouse", str(lake))
    commits = connect("local", lake).get_commits(MAIN)
    assert [e["commit"] for e in entries] == [c.hash for c in commits]
    assert set(entries[0]) == {"commit", "time", "author", "message", "properties"}
    assert entries[0]["properties"]["prefect.flow_run_id"] == FLOW_RUN_ID
    assert entries[0]["properties"]["wap.source"] == LONG_SOURCE
    assert entries[0]["author"] == "tester" and entries[0]["message"].startswith("wap: publish")
    from datetime import datetime

    assert datetime.fromisoformat(entries[0]["time"]).utcoffset().total_seconds() == 0


def test_query_json_writes_every_type_as_documented(lake):
    sql = (
        "select PassengerId, Name,"
        " timestamp '2024-01-02 03:04:05.123456' as ts,"
        " timestamptz '2024-01-02 03:04:05+00' as tstz,"
        " date '2024-01-02' as d,"
        " 1234567890.123456789::decimal(20,9) as dec,"
        " '\\xDE\\xAD\\x00'::blob as bin,"
        " 'nan'::double as nan, 'inf'::double as pinf, '-inf'::double as ninf, null::double as missing,"
        " 1.5::double as f, [1, 2] as l, {'k': 'v'} as s, interval 1 day as iv"
        " from titanic order by PassengerId limit 3"
    )
    rows = _json("query", sql, "--lakehouse", str(lake))
    assert len(rows) == 3
    row = rows[0]
    assert list(row) == ["PassengerId", "Name", "ts", "tstz", "d", "dec", "bin", "nan", "pinf", "ninf", "missing"] + [
        "f",
        "l",
        "s",
        "iv",
    ]
    assert isinstance(row["PassengerId"], int) and isinstance(row["Name"], str)
    assert row["ts"] == "2024-01-02T03:04:05.123456"
    assert row["tstz"].startswith("2024-01-02T03:04:05") and row["tstz"].endswith("+00:00")
    assert row["d"] == "2024-01-02"
    assert row["dec"] == "1234567890.123456789"
    assert base64.b64decode(row["bin"]) == b"\xde\xad\x00"
    assert (row["nan"], row["pinf"], row["ninf"], row["missing"]) == ("NaN", "Infinity", "-Infinity", None)
    assert row["f"] == 1.5 and row["l"] == [1, 2] and row["s"] == {"k": "v"}
    assert row["iv"] == "P0M1DT0S"


def test_query_json_returns_every_row_unless_max_rows(lake):
    assert len(_json("query", "select * from titanic", "--lakehouse", str(lake))) == 40
    assert len(_json("query", "select * from titanic", "--lakehouse", str(lake), "--max-rows", "5")) == 5


def test_json_error_is_one_line_on_stderr_and_nothing_on_stdout(lake):
    result = wap("tables", "--ref", "nosuchbranch", "--lakehouse", str(lake), "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == ["error: branch not found: nosuchbranch"], result.stderr
