"""Eight `wap run` gates at once, as separate processes against one lakehouse and one Prefect server.

- Into the same table (different data each): every gate publishes (exit 0) or stops with a clear
  conflict message (exit 3); main ends holding exactly one audited source's rows, never a mix, and no
  published commit is lost from main's history.
- Into eight different tables: all publish, every table holds its own source.
- The Prefect server under this load loses no run: eight flow runs recorded, all in terminal states,
  and each dataset's `<dataset>-validation` artifact is there.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest
from gate_fixtures import latest_artifact
from reliability_helpers import (
    declare,
    fingerprint,
    flow_runs_named,
    gate_branches,
    gate_env,
    run_wap,
    wap_cmd,
)

from flows.demo.data import generate_titanic, write_csv
from flows.lakehouse import MAIN, connect
from flows.lakehouse.sources import read_source
from flows.reports import artifact_key

pytestmark = pytest.mark.subprocess

GATES = 8
PUBLISHED = re.compile(r"published (\w+): (\d+) rows at commit\s+([0-9a-f]{64})")


def _sources(folder: Path, count: int) -> list[tuple[str, tuple]]:
    out = []
    for i in range(count):
        path = write_csv(generate_titanic(891 + 7 * i, seed=500 + i), folder / f"src{i}.csv")
        out.append((str(path), fingerprint(read_source(str(path)))))
    return out


def _run_all_at_once(names: list[str], lake: Path, env: dict[str, str]) -> dict[str, subprocess.CompletedProcess]:
    procs = {
        name: subprocess.Popen(
            wap_cmd("run", name, "--lakehouse", str(lake)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in names
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=400)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


def _check_prefect_kept_every_run(prefect_api: str, names: list[str], results) -> None:
    runs = flow_runs_named(prefect_api, [f"wap-{name}" for name in names])
    assert sorted(r["name"] for r in runs) == sorted(f"wap-{name}" for name in names), "a flow run is missing"
    for run in runs:
        name = run["name"].removeprefix("wap-")
        expected = "COMPLETED" if results[name].returncode == 0 else "FAILED"
        assert run["state"]["type"] == expected, (name, run["state"], results[name].stderr[-500:])
    for name in names:
        report = latest_artifact(artifact_key(name, "validation"), prefect_api)
        assert report is not None, f"no validation artifact for {name}"
        title = report["data"].splitlines()[0]  # "# <dataset>: PUBLISHED" or "...: NOT PUBLISHED"
        assert title.endswith(": PUBLISHED") == (results[name].returncode == 0), title


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:6]


def test_eight_gates_into_one_table_leave_exactly_one_audited_version(prefect_api, tmp_path, token):
    sources = _sources(tmp_path, GATES)
    names = [f"same_{token}_{i}" for i in range(GATES)]
    declared = declare(
        tmp_path / "datasets.yml",
        {
            name: {"source": src, "table": "shared", "checkpoint": "titanic"}
            for name, (src, _) in zip(names, sources, strict=True)
        },
    )
    lake = tmp_path / "lake"
    connect("local", lake)  # created up front, so the gates race on the table, not on creating the catalog
    results = _run_all_at_once(names, lake, gate_env(prefect_api, WAP_DATASETS=str(declared)))

    published: dict[str, str] = {}
    for name, result in results.items():
        text = result.stdout + result.stderr
        assert result.returncode in (0, 3), f"{name}: exit {result.returncode}\n{text[-2000:]}"
        assert "Traceback" not in text, text[-2000:]
        if result.returncode == 0:
            published[name] = PUBLISHED.search(result.stdout.replace("\n", " ")).group(3)
        else:
            message = result.stderr.strip().splitlines()[-1]
            assert message.startswith("not published:"), message
            assert "merge conflict" in message or "concurrent" in message or "moved" in message, message
            assert "bauplan.shared" in message, message
    assert published, "no gate published"

    client = connect("local", lake)
    head = client.get_commits(MAIN, limit=1)[0]
    main_print = fingerprint(client.scan("shared", ref=MAIN))
    matches = [name for name, (_, print_) in zip(names, sources, strict=True) if print_ == main_print]
    assert len(matches) == 1, "main's rows are not exactly one source's"
    assert head.properties["wap.dataset"] == matches[0] and matches[0] in published
    assert head.properties["gx.success"] == "true"
    history = {c.hash for c in client.get_commits(MAIN)}
    assert set(published.values()) <= history, "a published commit was lost from main's history"
    assert gate_branches(lake) == []
    _check_prefect_kept_every_run(prefect_api, names, results)
    print(f"{len(published)} of {GATES} published, {GATES - len(published)} refused with a conflict")


def test_eight_gates_into_eight_tables_all_publish(prefect_api, tmp_path, token):
    """`wap run --all` over eight declared datasets: eight gates at once in one process, all publish."""
    sources = _sources(tmp_path, GATES)
    names = [f"many_{token}_{i}" for i in range(GATES)]
    declared = declare(
        tmp_path / "datasets.yml",
        {name: {"source": src, "checkpoint": "titanic"} for name, (src, _) in zip(names, sources, strict=True)},
    )
    lake = tmp_path / "lake"
    connect("local", lake)
    result = run_wap("run", "--all", "--lakehouse", str(lake), env=gate_env(prefect_api, WAP_DATASETS=str(declared)))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "Traceback" not in result.stdout + result.stderr

    client = connect("local", lake)
    history = {c.hash[:12] for c in client.get_commits(MAIN)}
    rows = {line.split()[1]: line.split() for line in result.stdout.splitlines() if line.startswith("│ many_")}
    assert sorted(rows) == sorted(names), result.stdout
    for name, (_, print_) in zip(names, sources, strict=True):
        assert rows[name][3] == "published" and rows[name][7] in history, rows[name]
        assert fingerprint(client.scan(name, ref=MAIN)) == print_, f"table {name} does not hold its source"
    assert gate_branches(lake) == []
    _check_prefect_kept_every_run(prefect_api, names, dict.fromkeys(names, result))
