"""End to end through the Prefect UI: the gate's validation report as a person sees it.

A real `prefect server start` (own PREFECT_HOME, own SQLite) serves the API and both UIs; `wap run` (the CLI,
in-process) publishes clean Titanic data (exit 0), then is blocked by corrupted data (exit 1). Each run's
`titanic-validation` markdown artifact is opened in headless Chromium, in the V1 UI (`/artifacts/artifact/<id>`,
where the flow run links lead) and the V2 UI (`/v2/artifacts/artifact/<id>`, where the dashboard opens by
default), and the rendered DOM must show the verdict, what failed with its bad values, and real tables (not
markdown source).

Needs Debian's `chromium` (`apt-get install chromium`; `.ci/run` installs it): skipped without one.
Screenshots land in each test's tmp dir (and in $WAP_UI_SCREENSHOTS if set, e.g. for CI artifacts).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_runner import run_cli
from ui_helpers import (
    REPO,
    PrefectServer,
    RenderedMarkdown,
    artifacts,
    find_chromium,
    load_page,
    png_size,
    rendered_markdown,
    start_prefect_server,
    tail,
)

# One worker for the module (xdist group): its server and gate runs are made once, and one browser runs at a
# time. The fixtures are session-scoped: under xdist a module fixture is torn down whenever the worker's queue
# runs dry between two of the module's tests, and a second server with two more gate runs cost ~80 s.
pytestmark = [pytest.mark.browser, pytest.mark.subprocess, pytest.mark.timeout(420), pytest.mark.xdist_group("ui")]

REPORT_KEY = "titanic-validation"
TABLE_KEY = "titanic-expectations"
CANT_CONNECT = "Can't connect to Server API"
UI_ROUTES = {"v1": "/artifacts/artifact/{id}", "v2": "/v2/artifacts/artifact/{id}"}


@dataclass
class GateRun:
    name: str
    source: Path
    returncode: int
    output: str
    report: dict | None  # the titanic-validation artifact this run created
    table: dict | None  # the titanic-expectations artifact this run created

    def describe(self) -> str:
        return (
            f"`wap run titanic --source {self.source}` exited {self.returncode}; output tail:\n{tail(self.output, 30)}"
        )


@dataclass
class GateRuns:
    published: GateRun
    blocked: GateRun
    bad_sex_values: int  # rows of the corrupted source whose Sex is not male/female


@pytest.fixture(scope="session")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium on PATH: install Debian's chromium (apt-get install chromium) or set WAP_CHROMIUM")
    return path


@pytest.fixture(scope="session")
def prefect_server(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real Prefect server for this module; always stopped (its whole process group) at the end."""
    server = start_prefect_server(tmp_path_factory.mktemp("prefect-home"))
    try:
        yield server
    finally:
        server.stop()


_FINISHED: set[str] = set()


@pytest.fixture(autouse=True)
def _stop_the_server_after_the_last_ui_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """The server is session-scoped (see above), but nothing needs it after this module's last test: stop it
    then, instead of letting it idle (~10% of a core) until the session ends."""
    yield
    _FINISHED.add(request.node.nodeid)
    mine = {item.nodeid for item in request.session.items if item.path == request.node.path}
    if mine <= _FINISHED and "prefect_server" in request.fixturenames:
        request.getfixturevalue("prefect_server").stop()


@pytest.fixture(scope="session")
def gate_runs(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> GateRuns:
    """`wap run` against the server: clean data (published), then corrupted data into the same lakehouse."""
    import pyarrow.compute as pc

    from flows.demo.data import corrupt, generate_titanic, write_csv

    work = tmp_path_factory.mktemp("gate")
    clean = generate_titanic(891)
    bad = corrupt(clean, "unknown_sex")
    sources = {"published": write_csv(clean, work / "titanic-clean.csv"), "blocked": write_csv(bad, work / "bad.csv")}
    bad_sex_values = len(bad) - pc.sum(pc.is_in(bad["Sex"], value_set=clean["Sex"].unique())).as_py()
    # A copy of the GX project: the runs' validation results and data docs must not land in the repo.
    gx_dir = work / "gx"
    shutil.copytree(REPO / "gx", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
    env = {"PREFECT_API_URL": prefect_server.api_url, "WAP_GX_DIR": str(gx_dir), "COLUMNS": "200"}
    runs = {}
    for name, source in sources.items():
        before = {a["id"] for a in artifacts(prefect_server.api_url, REPORT_KEY)}
        args = ["run", "titanic", "--source", str(source), "--backend", "local", "--lakehouse", str(work / "lakehouse")]
        result = run_cli(*args, env=env)
        new = [a for a in artifacts(prefect_server.api_url, REPORT_KEY) if a["id"] not in before]
        tables = artifacts(prefect_server.api_url, TABLE_KEY)
        runs[name] = GateRun(
            name,
            source,
            result.returncode,
            result.stdout + result.stderr,
            new[0] if new else None,
            next((t for t in tables if new and t["flow_run_id"] == new[0]["flow_run_id"]), None),
        )
    return GateRuns(runs["published"], runs["blocked"], bad_sex_values)


def test_gate_publishes_then_blocks(gate_runs: GateRuns) -> None:
    assert gate_runs.published.returncode == 0, gate_runs.published.describe()
    assert gate_runs.blocked.returncode == 1, gate_runs.blocked.describe()
    for run in (gate_runs.published, gate_runs.blocked):
        assert run.report is not None, f"no new {REPORT_KEY} artifact on the server; {run.describe()}"
        assert run.report["type"] == "markdown" and run.report["flow_run_id"], run.report
        assert run.table is not None, f"no {TABLE_KEY} artifact for the flow run of {run.name}"
    assert gate_runs.published.report["description"] == "titanic: published"
    assert gate_runs.blocked.report["description"] == "titanic: blocked"


def _open_report(run: GateRun, ui: str, server: PrefectServer, chromium: str, tmp_path: Path):
    expected = {"published": 0, "blocked": 1}[run.name]
    if run.returncode != expected or run.report is None:
        pytest.fail(f"the gate run for the {run.name} report did not behave: {run.describe()}")
    url = server.url + UI_ROUTES[ui].format(id=run.report["id"])

    def ready(dom: str) -> bool:
        md = rendered_markdown(dom)
        return md is not None and bool(md.headings) and md.headings[0].startswith("titanic:") and md.td_count > 0

    page = load_page(
        chromium, url, screenshot=tmp_path / f"{run.name}-{ui}.png", profile_root=tmp_path / "chromium", ready=ready
    )
    print(f"{run.name} report in the {ui} UI: {url} rendered in {page.seconds:.1f}s; screenshot {page.screenshot}")
    if target := os.environ.get("WAP_UI_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(page.screenshot, Path(target) / page.screenshot.name)

    assert CANT_CONNECT not in page.dom, f"the {ui} UI could not reach the API (PREFECT_UI_API_URL?) at {url}"
    assert png_size(page.screenshot) == (1400, 2200)
    # A blank page compresses to a few kB; a rendered report is hundreds.
    assert page.screenshot.stat().st_size > 30_000, f"screenshot of {url} looks blank: {page.screenshot}"
    md = rendered_markdown(page.dom)
    assert md is not None and md.ui == ui, f"{url}: expected the {ui} UI's markdown renderer"
    # Rendered, not shown as source: no table pipes, bold stars or heading hashes left in the text.
    for syntax in ("|---", "| Status", "**", "## ", "# titanic"):
        assert syntax not in md.text, f"{ui} UI shows raw markdown {syntax!r}: {md.text[:500]}"
    return md


def _expectations_table(md: RenderedMarkdown) -> list[list[str]]:
    """The overview table's rows as [status, expectation, result]; its Suite column names both suites."""
    tables = [t for t in md.tables if t and t[0] == ["Status", "Suite", "Expectation", "Result"]]
    assert len(tables) == 1, f"{md.ui} UI: no rendered expectations table; tables: {md.tables}"
    rows = tables[0][1:]
    assert all(len(row) == 4 for row in rows), rows
    assert {row[1] for row in rows} == {"titanic", "titanic_table"}, rows
    return [[status, description, result] for status, _, description, result in rows]


def _table_rows(run: GateRun) -> list[dict]:
    return json.loads(run.table["data"])


@pytest.mark.parametrize("ui", sorted(UI_ROUTES))
def test_blocked_report_in_ui(
    ui: str, gate_runs: GateRuns, prefect_server: PrefectServer, chromium: str, tmp_path: Path
) -> None:
    run = gate_runs.blocked
    md = _open_report(run, ui, prefect_server, chromium, tmp_path)

    assert md.headings[0] == "titanic: BLOCKED by the audit", md.headings
    assert "Failed expectations" in md.headings, md.headings
    # The failure, its column and sample bad values, as a list item a reader sees first.
    failures = [li for li in md.list_items if "Sex values must belong to this set: male female." in li]
    assert failures, f"{ui} UI: the failed Sex expectation is not listed; list items: {md.list_items}"
    failure = failures[0]
    assert f"Found {gate_runs.bad_sex_values} unexpected values" in failure, failure
    assert "expect_column_values_to_be_in_set" in failure and "on column Sex" in failure, failure
    for value in ("unknown", "M", "F", "Sex"):
        assert value in md.code, f"{ui} UI: {value!r} is not shown as a code value; code spans: {md.code}"
    assert str(run.source) in md.code, f"{ui} UI: the source path is missing: {md.code}"

    rows = _expectations_table(md)
    assert len(rows) == len(_table_rows(run)), f"{ui} UI: {len(rows)} table rows for {len(_table_rows(run))}"
    assert all(len(row) == 3 for row in rows), rows
    assert md.td_count >= 4 * len(rows)
    status, description, result = rows[0]
    assert (status, description) == ("FAIL", "Sex values must belong to this set: male female."), rows[0]
    assert result.startswith(f"{gate_runs.bad_sex_values} unexpected ("), rows[0]
    assert [row[0] for row in rows[1:]] == ["pass"] * (len(rows) - 1), "only the Sex expectation failed"
    assert f"1 of {len(rows)} expectations failed" in md.text, md.text[:300]
    descriptions = {row[1] for row in rows}
    for expected in ("PassengerId values must be unique.", "Sex values must never be null."):
        assert expected in descriptions, f"{ui} UI: {expected!r} missing from the table: {sorted(descriptions)}"


@pytest.mark.parametrize("ui", sorted(UI_ROUTES))
def test_published_report_in_ui(
    ui: str, gate_runs: GateRuns, prefect_server: PrefectServer, chromium: str, tmp_path: Path
) -> None:
    run = gate_runs.published
    md = _open_report(run, ui, prefect_server, chromium, tmp_path)

    assert md.headings[0] == "titanic: PUBLISHED", md.headings
    assert "Failed expectations" not in md.headings
    commit = re.search(r"commit\s+([0-9a-f]{16,})", run.output)
    assert commit, run.describe()
    assert commit.group(1) in md.code, f"{ui} UI: published commit {commit.group(1)} not shown: {md.code}"
    assert str(run.source) in md.code

    rows = _expectations_table(md)
    expected_rows = _table_rows(run)
    assert len(rows) == len(expected_rows) > 10, rows
    assert re.search(rf"All {len(rows)} expectations passed", md.text), md.text[:300]
    assert {row[0] for row in rows} == {"pass"}, rows
    descriptions = {row[1] for row in rows}
    for expected in ("PassengerId values must be unique.", "Sex values must belong to this set: male female."):
        assert expected in descriptions, f"{ui} UI: {expected!r} missing from the table: {sorted(descriptions)}"


@pytest.mark.parametrize("ui", sorted(UI_ROUTES))
def test_history_and_quality_chart_in_ui(
    ui: str, gate_runs: GateRuns, prefect_server: PrefectServer, chromium: str, tmp_path: Path
) -> None:
    """`titanic-quality` shows its chart as an image (a data-URI SVG: the UI drops inline SVG), and
    `titanic-history` lists both runs, newest first."""
    import base64

    [quality] = artifacts(prefect_server.api_url, "titanic-quality")[:1]
    url = prefect_server.url + UI_ROUTES[ui].format(id=quality["id"])

    def ready(dom: str) -> bool:
        md = rendered_markdown(dom)
        return md is not None and bool(md.headings) and md.headings[0].startswith("titanic: quality")

    page = load_page(chromium, url, screenshot=tmp_path / f"quality-{ui}.png", profile_root=tmp_path / "c", ready=ready)
    print(f"quality chart in the {ui} UI: {url}; screenshot {page.screenshot}")
    images = re.findall(r'<img[^>]*src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page.dom)
    assert len(images) == 1, f"{ui} UI: the chart is not rendered as an image"
    svg = base64.b64decode(images[0]).decode()
    assert svg.count("<title>") == 2 and svg.count('fill="#b0b0b0"') == 1, svg[:300]  # 2 runs, 1 not published
    md = rendered_markdown(page.dom)
    assert md is not None and "Runs: 1 blocked, 1 published." in md.text, md.text

    [history] = artifacts(prefect_server.api_url, "titanic-history")[:1]
    rows = json.loads(history["data"])
    assert [r["verdict"] for r in rows] == ["blocked", "published"], rows
    url = prefect_server.url + UI_ROUTES[ui].format(id=history["id"])
    commit = rows[1]["published commit"]
    page = load_page(
        chromium,
        url,
        screenshot=tmp_path / f"history-{ui}.png",
        profile_root=tmp_path / "h",
        ready=lambda d: commit in d,
    )
    assert "blocked" in page.dom and rows[0]["branch"] in page.dom


@pytest.mark.parametrize("ui", sorted(UI_ROUTES))
def test_the_expectations_table_shows_what_failed_without_scrolling(
    ui: str, gate_runs: GateRuns, prefect_server: PrefectServer, chromium: str, tmp_path: Path
) -> None:
    """At a 1400 px window the UI shows 700-850 px of a table artifact before it scrolls: the columns a reader scans
    for (status, column, rule, unexpected count and share) are inside it, measured in Chromium."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the dev group's playwright drives Chromium")
    run = gate_runs.blocked
    assert run.table is not None, run.describe()
    url = prefect_server.url + UI_ROUTES[ui].format(id=run.table["id"])
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(url)
            page.locator("th").first.wait_for(timeout=60_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(tmp_path / f"expectations-{ui}.png"))
            heads = page.evaluate(
                "[...document.querySelectorAll('th')].map(h => [h.innerText.trim(), h.getBoundingClientRect().right])"
            )
            # The element that scrolls the table sideways, and so how much of it shows.
            visible_right = page.evaluate(
                """(() => { let e = document.querySelector('table');
                    while (e && e.scrollWidth <= e.clientWidth + 1) e = e.parentElement;
                    return (e || document.querySelector('table')).getBoundingClientRect().right; })()"""
            )
        finally:
            browser.close()
    print(f"expectations table in the {ui} UI: {url}; visible to x={visible_right:.0f}; headers {heads}")
    names = [name for name, _ in heads]
    assert names[:5] == ["status", "column", "rule", "unexpected", "percent"], names
    assert all(right <= visible_right + 1 for _, right in heads[:5]), (visible_right, heads[:6])
