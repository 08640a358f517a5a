"""A dataset's history in Prefect: `<dataset>-history` (table, newest first, one version per run) and
`<dataset>-quality` (a chart of rows and failed rules per run, as a data-URI SVG image). Real Prefect test server."""

from __future__ import annotations

import base64
import json
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from gate_fixtures import latest_artifact
from prefect import flow

from flows.reports.history import HISTORY_RUNS, history_row, quality_svg, record_history

pytestmark = pytest.mark.usefixtures("prefect_api")


def row(i: int, *, published: bool = True, failed: int = 0) -> dict[str, str]:
    return history_row(
        verdict="published" if published else "blocked",
        rows=100 + i,
        added=None,
        failed=[f"titanic: expect_column_values_to_not_be_null (c{k})" for k in range(failed)],
        published_commit=f"{i:012x}" if published else None,
        branch=f"tester.wap_hist_{i}",
        run=f"run-{i}",
        now=datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=i),
    )


@flow
def write_history(key: str, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    table: list[dict[str, str]] = []
    for r in rows:
        table = record_history(key, f"{key}-quality", "hist", r)
    return table


def test_each_run_adds_its_row_newest_first_and_the_table_keeps_the_newest_50() -> None:
    rows = [row(i, published=i % 3 != 0, failed=i % 3 == 0) for i in range(HISTORY_RUNS + 5)]
    table = write_history("hist-a-history", rows)
    assert len(table) == HISTORY_RUNS
    assert [r["run"] for r in table] == [f"run-{i}" for i in reversed(range(5, HISTORY_RUNS + 5))]
    stored = json.loads(latest_artifact("hist-a-history")["data"])
    assert stored == table
    assert stored[0] == {**rows[-1]}  # the run that wrote the version comes first
    blocked = next(r for r in stored if r["verdict"] == "blocked")
    assert (blocked["failed rules"], blocked["published commit"]) == ("1", "")


def test_two_runs_at_once_both_keep_their_row() -> None:
    """Each version's first row is its own run: concurrent writers cannot drop each other's row."""
    write_history("hist-b-history", [row(0)])
    barrier = threading.Barrier(2)

    @flow
    def one(i: int) -> None:
        barrier.wait()
        record_history("hist-b-history", "hist-b-quality", "hist", row(i))

    threads = [threading.Thread(target=one, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    write_history("hist-b-history", [row(3)])
    runs = [r["run"] for r in json.loads(latest_artifact("hist-b-history")["data"])]
    assert runs[0] == "run-3" and sorted(runs[1:3]) == ["run-1", "run-2"] and runs[3] == "run-0"


def test_the_quality_chart_is_an_image_of_every_run() -> None:
    rows = [row(i, published=i != 2, failed=2 if i == 2 else 0) for i in range(4)]
    write_history("hist-c-history", rows)
    markdown = latest_artifact("hist-c-history-quality")["data"]
    found = re.search(r"!\[[^\]]+\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert found, markdown
    svg = base64.b64decode(found.group(1)).decode()
    titles = re.findall(r"<title>([^<]+)</title>", svg)
    assert titles[0].startswith("2026-12-01 00:00:00 UTC: published, 100 rows")  # oldest on the left
    assert "blocked, 102 rows, 2 failed rules" in titles[2] and len(titles) == 4
    assert svg.count('fill="#b0b0b0"') == 1  # the one unpublished run's bar is grey
    assert "Runs: 3 published, 1 blocked." in markdown


def test_the_chart_of_no_runs_or_zero_rows_is_still_an_svg() -> None:
    assert quality_svg([]).startswith("<svg") and quality_svg([row(0) | {"rows": ""}]).endswith("</svg>")
