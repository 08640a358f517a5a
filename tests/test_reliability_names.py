"""Hostile names: branch, namespace, table and dataset names that try to escape, inject or confuse.

Each is rejected before anything is written: through `wap run --branch`, through datasets.yml entries
(dataset, table and namespace names), and through the client API and the gate flow. The lakehouse
directory is byte-for-byte unchanged and, for the CLI, no Prefect flow run is created. `wap query`
refuses anything but a read-only SELECT over the lakehouse's own tables.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gate_fixtures import run_cli
from reliability_helpers import (
    assert_one_line_error,
    declare,
    dir_snapshot,
    flow_run_count,
)

from flows.demo.data import generate_titanic, write_csv
from flows.lakehouse import MAIN, InvalidNameError, LakehouseError, QueryError, connect

HOSTILE = {
    "dotdot": "..",
    "parent_path": "../../etc",
    "slash": "a/b",
    "absolute": "/tmp/evil",
    "backslash": "a\\b",
    "leading_dot": ".hidden",
    "double_dot_inside": "user..wap",
    "trailing_dot": "user.",
    "single_quote_sql": "x'; DROP TABLE refs; --",
    "double_quote": 'x"y',
    "sql_comment": "main'--",
    "semicolon": "a;b",
    "space": "a b",
    "newline": "a\nb",
    "escape_sequence": "a\x1b[2Jb",
    "tab": "a\tb",
    "unicode_lookalike": "mаin",  # Cyrillic a
    "shell": "$(id)",
    "backtick": "`id`",
    "at_sign": "main@HEAD",
    "glob": "wap_*",
    "over_long": "b" * 300,
    "empty": "",
}
# Branch names may have single dots between parts ("user.wap_x"): the other names fit identifiers only.
NOT_AN_IDENTIFIER = {**HOSTILE, "dotted": "a.b", "leading_digit": "1abc", "over_long_129": "t" * 129}


@pytest.fixture(scope="module")
def lake(tmp_path_factory, prefect_api) -> Path:
    """A lakehouse with a published table: every hostile name must leave it byte-for-byte as it is."""
    from flows.gate import wap

    folder = tmp_path_factory.mktemp("names")
    source = write_csv(generate_titanic(200, seed=3), folder / "clean.csv")
    lake = folder / "lake"
    assert wap("titanic", source=str(source), backend="local", lakehouse=str(lake)).published
    return lake


@pytest.fixture(scope="module")
def clean_csv(lake: Path) -> str:
    return str(lake.parent / "clean.csv")


CLI_BRANCH_CASES = ("parent_path", "slash", "single_quote_sql", "newline", "escape_sequence", "shell", "over_long")


def test_wap_run_rejects_hostile_branch_names(lake, clean_csv, prefect_api):
    before, runs = dir_snapshot(lake), flow_run_count(prefect_api)

    def attempt(name: str):
        args = ["run", "titanic", "--source", clean_csv, "--branch", name, "--lakehouse", str(lake)]
        return run_cli(*args, env={"PREFECT_API_URL": prefect_api})

    # One of each kind through the CLI (the client API test below takes every name); argv cannot carry NUL.
    results = {key: attempt(HOSTILE[key]) for key in CLI_BRANCH_CASES}
    for key, result in results.items():
        message = assert_one_line_error(result, (2,), "invalid branch name")
        assert "\n" not in message and "\x1b" not in message, (key, message)
    assert dir_snapshot(lake) == before
    assert flow_run_count(prefect_api) == runs, "a rejected name still created a Prefect flow run"


def _entries(field: str, value: str) -> dict:
    entry = {"source": "/nonexistent.csv", "checkpoint": "titanic"}
    if field == "dataset":
        return {value: entry}
    return {"hostile": {**entry, field: value}}


DATASET_CASES = [
    ("dataset", "parent_path"),
    ("dataset", "single_quote_sql"),
    ("dataset", "over_long"),
    ("table", "parent_path"),
    ("table", "double_quote"),
    ("table", "dotted"),
    ("namespace", "dotdot"),
    ("namespace", "escape_sequence"),
    ("namespace", "newline"),
]
ALL_TOO = {("table", "parent_path"), ("namespace", "dotdot")}  # also through `wap run --all`


def test_datasets_yml_rejects_hostile_names(lake, prefect_api, tmp_path):
    before, runs = dir_snapshot(lake), flow_run_count(prefect_api)

    def attempt(case: tuple[str, str]):
        field, key = case
        declared = declare(tmp_path / f"{field}-{key}.yml", _entries(field, NOT_AN_IDENTIFIER[key]))
        env = {"PREFECT_API_URL": prefect_api, "WAP_DATASETS": str(declared)}
        target = NOT_AN_IDENTIFIER[key] if field == "dataset" else "hostile"
        # `--` so a name starting with "-" or "/" is an argument, as a shell user would pass it.
        single = run_cli("run", "--lakehouse", str(lake), "--", target, env=env) if target else None
        every = run_cli("run", "--all", "--lakehouse", str(lake), env=env) if case in ALL_TOO else None
        return case, single, every

    outcomes = [attempt(case) for case in DATASET_CASES]
    for (field, key), single, every in outcomes:
        for result in (single, every):
            if result is None:
                continue
            message = assert_one_line_error(result, (2,))
            assert "invalid" in message and ("name" in message or field in message), (field, key, message)
    assert dir_snapshot(lake) == before
    assert flow_run_count(prefect_api) == runs, "a rejected declaration still created a Prefect flow run"


def test_client_api_rejects_hostile_names(lake, clean_csv):
    client = connect("local", lake)
    before = dir_snapshot(lake)
    calls = []
    for key, name in HOSTILE.items():
        calls += [
            (f"create_branch {key}", lambda n=name: client.create_branch(n, from_ref=MAIN)),
            (f"create_branch from {key}", lambda n=name: client.create_branch("ok.branch", from_ref=n)),
            (f"delete_branch {key}", lambda n=name: client.delete_branch(n)),
            (f"merge into {key}", lambda n=name: client.merge_branch(MAIN, n)),
            (f"merge from {key}", lambda n=name: client.merge_branch(n, MAIN)),
            (f"get_commits {key}", lambda n=name: client.get_commits(n)),
            (f"get_tables ref {key}", lambda n=name: client.get_tables(n)),
            (f"query ref {key}", lambda n=name: client.query("select 1", ref=n)),
        ]
    for key, name in NOT_AN_IDENTIFIER.items():
        if key == "dotted":  # "a.b" is the qualified name of table b in namespace a: valid for the API
            continue
        calls += [
            (f"create_table {key}", lambda n=name: client.create_table(n, clean_csv, branch=MAIN, replace=True)),
            (f"create_table ns {key}", lambda n=name: client.create_table("t", clean_csv, branch=MAIN, namespace=n)),
            (f"import_data {key}", lambda n=name: client.import_data(n, clean_csv, branch=MAIN)),
            (f"scan ns {key}", lambda n=name: client.scan("titanic", ref=MAIN, namespace=n)),
            (f"get_table {key}", lambda n=name: client.get_table(n, MAIN)),
        ]
    accepted = []
    for label, call in calls:
        try:
            call()
        except InvalidNameError:
            continue
        except LakehouseError as exc:  # e.g. "branch not found" would mean the name reached a lookup
            accepted.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        accepted.append(f"{label}: accepted")
    assert not accepted, "\n".join(accepted)
    assert [b.name for b in client.get_branches()] == [MAIN]
    assert dir_snapshot(lake) == before, "a rejected call wrote to the lakehouse"


def test_gate_flow_rejects_hostile_branch_before_writing(lake, clean_csv):
    from flows.gate import wap

    before = dir_snapshot(lake)
    for name in ("../../etc", "x'; DROP TABLE refs; --", "a\nb", "b" * 300):
        with pytest.raises(InvalidNameError):
            wap("titanic", source=clean_csv, branch=name, backend="local", lakehouse=str(lake))
    assert dir_snapshot(lake) == before


QUERIES = {
    "insert": "insert into titanic select * from titanic",
    "create": "create table x as select 1",
    "delete": "delete from titanic",
    "update": "update titanic set Age = 0",
    "drop": "drop table titanic",
    "attach": "attach '/tmp/evil.db' as evil",
    "copy_to": "copy titanic to '/tmp/evil.csv'",
    "copy_from": "copy titanic from '/etc/passwd'",
    "export": "export database '/tmp/evil'",
    "pragma": "pragma database_list",
    "set": "set enable_external_access = true",
    "install": "install httpfs",
    "load": "load httpfs",
    "call": "call pragma_version()",
    "read_csv": "select * from read_csv('/etc/passwd')",
    "read_text": "select * from read_text('/etc/passwd')",
    "read_parquet": "select * from read_parquet('/etc/*.parquet')",
    "glob": "select * from glob('/*')",
    "second_statement": "select 1; drop table titanic",
    "cte_write": "with x as (select 1) insert into titanic select * from titanic",
    "extension_function": "select * from sqlite_scan('/tmp/x.db', 't')",
    "reset_lockdown": "select current_setting('enable_external_access'); reset lock_configuration",
}


def test_query_refuses_writes_files_and_extensions(lake):
    client = connect("local", lake)
    before = dir_snapshot(lake)
    allowed = []
    for key, sql in QUERIES.items():
        try:
            client.query(sql, ref=MAIN)
        except QueryError:
            continue
        allowed.append(key)
    assert not allowed, f"queries not refused: {allowed}"
    assert client.query("select count(*) as n from titanic", ref=MAIN).column("n")[0].as_py() == 200
    assert dir_snapshot(lake) == before


def test_wap_query_refuses_through_the_cli(lake, prefect_api):
    results = [run_cli("query", QUERIES[k], "--lakehouse", str(lake)) for k in ("attach", "copy_to", "read_csv")]
    for result in results:
        assert_one_line_error(result, (2,), "error:")
