"""Progress on long work: the embedded import reports each chunk it writes (flows.lakehouse.progress), and a gate
run keeps a `<dataset>-progress` Prefect progress artifact and prints a progress line per step. Real Prefect test
server, real embedded lakehouse, the shipped GX copy."""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest
from gate_fixtures import latest_artifact, run_cli

import flows.lakehouse.local as local
import flows.lakehouse.sources as sources
import flows.reports.progress as progress
from flows.demo.data import corrupt, generate_titanic, write_csv
from flows.lakehouse import MAIN, connect
from flows.lakehouse.progress import reporting_import_progress


def test_an_import_reports_each_chunk_with_the_parquet_sources_row_count(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(local, "IMPORT_CHUNK_ROWS", 100)
    monkeypatch.setattr(sources, "BATCH_ROWS", 50)
    pq.write_table(generate_titanic(350, seed=1), tmp_path / "t.parquet")
    write_csv(generate_titanic(250, seed=2), tmp_path / "t.csv")
    client = connect("local", tmp_path / "lake")
    client.create_branch("b", MAIN)
    client.create_table("t", str(tmp_path / "t.parquet"), branch="b")
    heard: list[tuple[int, int | None]] = []
    with reporting_import_progress(lambda rows, total: heard.append((rows, total))):
        client.import_data("t", str(tmp_path / "t.parquet"), branch="b")
        client.import_data("t", str(tmp_path / "t.csv"), branch="b")
    rows = [r for r, _ in heard]
    assert heard[:4] == [(100, 350), (200, 350), (300, 350), (350, 350)]
    assert all(total is None for _, total in heard[4:]) and rows[-1] == 250  # a CSV's count is known once read
    client.import_data("t", str(tmp_path / "t.csv"), branch="b")  # no listener: nothing reported, nothing fails
    assert len(heard) == len(rows)


@pytest.mark.usefixtures("prefect_api")
def test_a_run_reports_its_progress_as_an_artifact_and_a_line_per_step(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(local, "IMPORT_CHUNK_ROWS", 200)
    monkeypatch.setattr(sources, "BATCH_ROWS", 100)
    monkeypatch.setattr(progress, "THROTTLE_SECONDS", 0.0)
    pq.write_table(generate_titanic(891, seed=3), tmp_path / "clean.parquet")
    lake = str(tmp_path / "lake")
    result = run_cli("run", "titanic", "--source", str(tmp_path / "clean.parquet"), "--lakehouse", lake)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = re.findall(r"progress (\d+)%: (.+)", result.stdout + result.stderr)  # Prefect logs to stderr
    percents = [int(p) for p, _ in lines]
    assert percents == sorted(percents) and percents[-1] == 100, lines
    # Each line once, in order (an in-process run after others may hear one log record through several handlers).
    said = list(dict.fromkeys(s.strip() for _, s in lines))
    chunks = [s for s in said if s.startswith("write bauplan.titanic: ")]
    assert chunks == [f"write bauplan.titanic: {n} of 891 rows written" for n in ("200", "400", "600", "800", "891")]
    assert any(s.startswith("auditing bauplan.titanic: 891 rows at ") for s in said), said
    assert said[-1].startswith("published bauplan.titanic at commit ")
    artifact = latest_artifact("titanic-progress")
    assert artifact["type"] == "progress" and float(artifact["data"]) == 100.0
    assert artifact["description"].startswith("titanic: published bauplan.titanic at commit ")


@pytest.mark.usefixtures("prefect_api")
def test_a_blocked_run_stops_its_progress_at_the_audit(tmp_path) -> None:
    pq.write_table(corrupt(generate_titanic(300, seed=4), "bad_pclass"), tmp_path / "bad.parquet")
    result = run_cli("run", "titanic", "--source", str(tmp_path / "bad.parquet"), "--lakehouse", str(tmp_path / "l"))
    assert result.returncode == 1, result.stdout + result.stderr
    artifact = latest_artifact("titanic-progress")
    assert round(float(artifact["data"])) == 67, artifact  # write and audit done, publish not
    assert artifact["description"] == "titanic: audit of bauplan.titanic FAILED", artifact["description"]
