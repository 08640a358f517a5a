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


# ------------------------------------------------------------------------------------------- through the gate


def test_every_gate_run_adds_its_row_to_the_datasets_history(tmp_path) -> None:
    import pyarrow.parquet as pq
    from gate_fixtures import run_cli

    from flows.demo.data import corrupt, generate_titanic, write_csv
    from flows.lakehouse import MAIN, connect

    lake = str(tmp_path / "lake")
    clean = write_csv(generate_titanic(300, seed=1), tmp_path / "clean.csv")
    pq.write_table(corrupt(generate_titanic(300, seed=2), "bad_pclass"), tmp_path / "bad.parquet")
    more = write_csv(generate_titanic(40, seed=3, first_id=1000), tmp_path / "more.csv")
    declared = tmp_path / "datasets.yml"
    declared.write_text(
        "datasets:\n  hist_titanic:\n    source: unused.csv\n    table: hist_titanic\n    checkpoint: titanic\n"
    )
    env = {"WAP_DATASETS": str(declared)}
    codes = [
        run_cli("run", "hist_titanic", "--source", str(clean), "--lakehouse", lake, env=env).returncode,
        run_cli(
            "run", "hist_titanic", "--source", str(tmp_path / "bad.parquet"), "--lakehouse", lake, env=env
        ).returncode,
        run_cli(
            "run", "hist_titanic", "--source", str(more), "--mode", "append", "--lakehouse", lake, env=env
        ).returncode,
    ]
    assert codes == [0, 1, 0]
    history = json.loads(latest_artifact("hist-titanic-history")["data"])
    assert [r["verdict"] for r in history] == ["published", "blocked", "published"]
    assert [(r["rows"], r["added"]) for r in history] == [("340", "40"), ("300", "300"), ("300", "300")]
    assert history[1]["failed rules"] == "1" and "expect_column_values_to_be_in_set (Pclass)" in history[1]["failed"]
    head = connect("local", lake).get_branch(MAIN).hash
    assert history[0]["published commit"] == head[:12] and history[1]["published commit"] == ""
    assert all(re.search(r"/runs/flow-run/[0-9a-f-]{36}$", r["run"]) for r in history), history
    assert all(r["branch"].split(".")[1].startswith("wap_hist_titanic_") for r in history)
    assert "data:image/svg+xml;base64," in latest_artifact("hist-titanic-quality")["data"]
    # Each run renamed for its branch and verdict: the UI's run lists tell them apart.
    import httpx
    from prefect.settings import PREFECT_API_URL

    names = []
    for r in history:
        run_id = r["run"].rsplit("/", 1)[-1]
        names.append(httpx.get(f"{PREFECT_API_URL.value()}/flow_runs/{run_id}", timeout=30).json()["name"])
    stamps = [r["branch"].removeprefix(r["branch"].split(".")[0] + ".wap_hist_titanic_") for r in history]
    assert names == [
        f"wap-hist_titanic-{s}: {v}" for s, v in zip(stamps, ("published", "blocked", "published"), strict=True)
    ]


def test_a_group_run_adds_a_row_to_the_groups_history_and_each_members(tmp_path) -> None:
    from gate_fixtures import run_cli

    from flows.demo.shop import generate_customers, generate_orders, write_shop

    orders, items = generate_orders(30, customers=20)
    files = write_shop({"customers": generate_customers(20), "orders": orders, "order_items": items}, tmp_path)
    sources = [arg for m in ("customers", "orders", "order_items") for arg in ("--source", f"{m}={files[m]}")]
    before = len(json.loads((latest_artifact("shop-history") or {"data": "[]"})["data"]))
    result = run_cli("run", "--group", "shop", *sources, "--lakehouse", str(tmp_path / "lake"))
    assert result.returncode == 0, result.stdout + result.stderr
    group = json.loads(latest_artifact("shop-history")["data"])
    assert len(group) == min(before + 1, HISTORY_RUNS) and group[0]["verdict"] == "published"
    assert group[0]["rows"] == str(20 + 30 + len(items))
    import httpx
    from prefect.settings import PREFECT_API_URL

    run = httpx.get(f"{PREFECT_API_URL.value()}/flow_runs/{group[0]['run'].rsplit('/', 1)[-1]}", timeout=30).json()
    assert re.fullmatch(r"wap-group-shop-\d{8}t\d{6}z_[0-9a-f]{8}: published", run["name"]), run["name"]
    member = json.loads(latest_artifact("orders-history")["data"])[0]
    assert (member["verdict"], member["rows"], member["published commit"]) == (
        "published",
        "30",
        group[0]["published commit"],
    )
