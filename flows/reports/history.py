"""A dataset's runs over time, as Prefect artifacts beside its validation report.

    <dataset>-history   table: the newest 50 runs, newest first (time, verdict, rows, added, failed rules,
                        published commit, the failed rules' names, link to the run, branch)
    <dataset>-quality   markdown: rows and failed rules per run as a chart (an SVG image: the Prefect UI renders
                        a data-URI image in a markdown artifact, and drops inline SVG), and the table's last row

Each version of `<dataset>-history` starts with the run that wrote it, so the table is that run's row followed by
the first row of each earlier version: two runs at once each write their own version, and neither loses the other's
row (a read-modify-write of one table would). A group writes `<group>-history` the same way.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC, datetime
from html import escape
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

HISTORY_RUNS = 50
# What a reader scans for first comes first: the UI shows about 1000 px of a table before it scrolls.
COLUMNS = ("time", "verdict", "rows", "added", "failed rules", "published commit", "failed", "run", "branch")
FAILED_CELL = 80  # the failed rules' names, cut: the run's validation report lists them all


def history_row(
    *,
    verdict: str,
    rows: int | None,
    added: int | None,
    failed: list[str],
    published_commit: str | None,
    branch: str,
    run: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """One run's row of the history table (every cell a string: the table artifact shows them as they are)."""
    named = ", ".join(failed)
    return {
        "time": (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "verdict": verdict,
        "rows": "" if rows is None else str(rows),
        "added": "" if added is None else str(added),
        "failed rules": str(len(failed)),
        "published commit": (published_commit or "")[:12],
        "failed": named if len(named) <= FAILED_CELL else named[: FAILED_CELL - 1] + "…",
        "run": run,
        "branch": branch,
    }


def current_flow_run_id() -> str | None:
    """The running flow's id (from its tasks too); None outside a flow."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return str(context.flow_run.id) if context is not None and context.flow_run is not None else None


def this_run_link() -> str:
    """The running flow's page in the Prefect UI (its id where the UI's address is unknown); empty outside a flow."""
    from prefect.utilities.urls import url_for

    run_id = current_flow_run_id()
    if run_id is None:
        return ""
    return url_for("flow-run", obj_id=run_id) or run_id


def earlier_rows(key: str, limit: int = HISTORY_RUNS - 1) -> list[dict[str, str]]:
    """The first row of each of the newest ``limit`` versions of the history table ``key``: one request."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        versions = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=limit,
        )
    rows = []
    for version in versions:
        data = json.loads(version.data) if isinstance(version.data, str) else version.data
        if isinstance(data, list) and data and isinstance(data[0], dict):  # a version someone else wrote: skipped
            rows.append({column: str(data[0].get(column, "")) for column in COLUMNS})
    return rows


def record_history(key: str, quality_key: str, name: str, row: dict[str, str]) -> list[dict[str, str]]:
    """Write this run's version of the history table and the quality chart; return the table (newest first)."""
    table = [row, *earlier_rows(key)]
    create_table_artifact(key=key, table=table, description=f"{name}: the newest {len(table)} runs, newest first")
    create_markdown_artifact(
        key=quality_key, markdown=quality_markdown(name, table), description=f"{name}: rows and failed rules per run"
    )
    return table


def quality_markdown(name: str, table: list[dict[str, str]]) -> str:
    """The chart (oldest run on the left) and a line per verdict count."""
    verdicts = Counter(row["verdict"].split(",")[0] for row in table)
    counts = ", ".join(f"{count} {verdict}" for verdict, count in verdicts.items())
    image = base64.b64encode(quality_svg(list(reversed(table))).encode()).decode()
    return (
        f"# {name}: quality over the last {len(table)} runs\n\n"
        f"![rows (bars) and failed rules (red) per run, oldest first](data:image/svg+xml;base64,{image})\n\n"
        f"Bars: the rows each run audited (blue: published, grey: not published); red dots: failed rules.\n"
        f"Runs: {counts}. Newest: {table[0]['time']}, {table[0]['verdict']}.\n"
    )


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def quality_svg(runs: list[dict[str, str]], width: int = 720, height: int = 220) -> str:
    """Rows per run as bars and failed rules per run as red dots on a second scale, oldest first. A light panel of
    its own, so it reads on the UI's dark and light themes alike."""
    left, right, top, bottom = 56, 40, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    rows = [_int(r["rows"]) for r in runs]
    failed = [_int(r["failed rules"]) for r in runs]
    top_rows, top_failed = max(rows, default=0) or 1, max(failed, default=0) or 1
    step = plot_w / max(len(runs), 1)
    bar = max(step * 0.7, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#ffffff" rx="4"/>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" fill="#1f4e79">{top_rows}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" fill="#1f4e79">0</text>',
        f'<text x="6" y="{top - 12}" fill="#1f4e79">rows</text>',
        f'<text x="{left + plot_w + 6}" y="{top + 4}" fill="#c0392b">{top_failed}</text>',
        f'<text x="{width - 6}" y="{top - 12}" text-anchor="end" fill="#c0392b">failed rules</text>',
        f'<text x="{left + plot_w + 6}" y="{top + plot_h}" fill="#c0392b">0</text>',
    ]
    for i, run in enumerate(runs):
        x = left + i * step + (step - bar) / 2
        h = plot_h * rows[i] / top_rows
        colour = "#2e75b6" if run["published commit"] else "#b0b0b0"
        label = escape(f"{run['time']}: {run['verdict']}, {rows[i]} rows, {failed[i]} failed rules")
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{label}</title></rect>"
        )
        cy = top + plot_h - plot_h * failed[i] / top_failed
        parts.append(f'<circle cx="{x + bar / 2:.1f}" cy="{cy:.1f}" r="3.5" fill="#c0392b"/>')
    if runs:
        parts.append(f'<text x="{left}" y="{height - 12}" fill="#333">{escape(runs[0]["time"])}</text>')
        parts.append(
            f'<text x="{left + plot_w}" y="{height - 12}" text-anchor="end" fill="#333">'
            f"{escape(runs[-1]['time'])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def failed_rule_names(audits: list[Any]) -> list[str]:
    """`suite: expectation (column)` for each failed rule of these audit results."""
    names = []
    for audit in audits:
        for e in getattr(audit, "failed", []):
            column = f" ({e.column})" if e.column else ""
            names.append(f"{e.suite}: {e.expectation_type}{column}" if e.suite else f"{e.expectation_type}{column}")
    return names
